// The entry file: the two exports of the warm ABI (docs/functions.md), with
// the batch loop of sluice.ts around this function's per-record code in
// filter.ts. Only the entry file's exports become the module's.
import { begin, finish, next } from "./sluice";
import { levelFilter } from "./filter";

export { sluice_alloc } from "./sluice";

/** sluice_handle: processes one request frame and returns the response. */
export function sluice_handle(ptr: i32, len: i32): i64 {
  begin(ptr, len);
  while (next()) levelFilter();
  return finish();
}
