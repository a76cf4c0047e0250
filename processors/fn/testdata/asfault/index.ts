// The AssemblyScript example (examples/assemblyscript) with test hooks, for
// processors/fn/assemblyscript_test.go. The example's own code does the work:
// this entry only adds, for a record whose data has "op":
//
//   "fail"   log a line, then fail the batch with a message naming the offset;
//   "loop"   loop forever (the host's timeout must stop it);
//   "abort"  a failed assertion: the example's abort() (not env.abort).
//
// Every other record goes through the example's level filter. The hooks are
// kept out of the example so that no data can make a deployed copy of it spin.
import { Span, begin, fail, finish, log, member, next, record } from "../../../../examples/assemblyscript/assembly/sluice";
import { levelFilter } from "../../../../examples/assemblyscript/assembly/filter";

export { sluice_alloc } from "../../../../examples/assemblyscript/assembly/sluice";

const op = new Span();
let spins: u64 = 0;

export function sluice_handle(ptr: i32, len: i32): i64 {
  begin(ptr, len);
  while (next()) {
    if (member(record.data, "op", op)) {
      if (op.equals('"fail"')) {
        log("failing at offset " + record.offset.toString());
        fail("record at offset " + record.offset.toString() + " asked to fail");
        continue;
      }
      if (op.equals('"loop"')) {
        while (true) spins++;
      }
      if (op.equals('"abort"')) {
        assert(spins == 42, "record asked to abort");
      }
    }
    levelFilter();
  }
  return finish();
}
