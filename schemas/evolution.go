package schemas

import (
	"errors"
	"fmt"
	"strings"
)

// CheckEvolution reports whether a table whose files were written with old
// may go on with new, so that the old files stay queryable next to the new
// ones. Queries read every file of a table with read_parquet(...,
// union_by_name = true), which matches columns by name, reads a column a
// file lacks as NULL and unions the types of a column across files; so a
// change is allowed only if that union is exactly the new schema:
//
//   - adding nullable columns after the existing ones (old files read NULL);
//   - widening int32 to int64, float32 to float64, decimal(p,s) to one with
//     at least as many digits before and after the point, also inside lists,
//     maps and structs;
//   - adding struct fields after the existing ones (nested fields are
//     nullable, so old values read NULL there);
//   - making a not-null column nullable.
//
// Everything else is refused, each problem with what changed and why:
// removing, renaming or reordering columns or struct fields, narrowing or
// other type changes, making a column not null, and changing time_column,
// rest_column or partition_by (the files' layout). The new schema must also
// be valid.
func CheckEvolution(old, new *Schema) error {
	if err := new.Validate(); err != nil {
		return fmt.Errorf("the new schema is invalid: %w", err)
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if old.TimeColumn != new.TimeColumn {
		add("time_column changed from %q to %q: it decides each row's event time and hour partition, and the old files were laid out by the old one", old.TimeColumn, new.TimeColumn)
	}
	if old.RestColumn != new.RestColumn {
		add("rest_column changed from %q to %q: old rows keep their unmatched fields in the old one, so they would be split across two columns", old.RestColumn, new.RestColumn)
	}
	if o, n := partitionLayout(old), partitionLayout(new); o != n {
		add("partition_by changed from [%s] to [%s]: the old files stay in the old directory layout, which the new one would misread", o, n)
	}
	errs = append(errs, checkColumns(old, new)...)
	return errors.Join(errs...)
}

// checkColumns compares the columns: every old one kept, in order, with a
// compatible type; new ones only after them, and nullable.
func checkColumns(old, new *Schema) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	last := -1 // position in new of the previous old column
	for _, oc := range old.Columns {
		j := new.index(oc.Name)
		if j < 0 {
			add("column %q was removed or renamed: old files still hold it, so its data would vanish from queries (a later column of that name and another type could not be read with them); keep it", oc.Name)
			continue
		}
		nc := new.Columns[j]
		if j < last {
			add("column %q moved before %q: existing columns keep their order (SELECT * follows the oldest files)", oc.Name, new.Columns[last].Name)
		}
		last = max(last, j)
		if !oc.NotNull && nc.NotNull {
			add("column %q became not null: old files may hold nulls in it", oc.Name)
		}
		ot, oerr := parseKind(oc.Type)
		nt, _ := parseKind(nc.Type)
		if oerr != nil {
			add("column %q: the old type is invalid: %v", oc.Name, oerr)
			continue
		}
		if err := checkWidening(oc.Name, ot, nt); err != nil {
			errs = append(errs, err)
		}
	}
	for j, nc := range new.Columns {
		if old.index(nc.Name) >= 0 {
			continue
		}
		if j < last {
			add("new column %q must come after the existing columns (SELECT * follows the oldest files)", nc.Name)
		}
		if nc.NotNull {
			add("new column %q must be nullable: old files have no value for it, so it reads as NULL there", nc.Name)
		}
	}
	return errs
}

const allowedChanges = "allowed: int32→int64, float32→float64, decimal to at least as many digits before and after the point, new struct fields at the end"

// checkWidening checks that values of type o, in old files, read as type n
// when unioned with new files; path names the value in the message.
func checkWidening(path string, o, n *typ) error {
	switch {
	case o.canon == n.canon:
		return nil
	case o.tag == tInt32 && n.tag == tInt64, o.tag == tFloat32 && n.tag == tFloat64:
		return nil
	case o.tag == tDecimal && n.tag == tDecimal && n.scale >= o.scale && n.prec-n.scale >= o.prec-o.scale:
		return nil
	case o.tag == tList && n.tag == tList:
		return checkWidening(path+"[]", o.elem, n.elem)
	case o.tag == tMap && n.tag == tMap:
		return checkWidening(path+"[]", o.elem, n.elem)
	case o.tag == tStruct && n.tag == tStruct:
		return checkStructWidening(path, o, n)
	}
	how := "changed type"
	if narrowing(o, n) {
		how = "was narrowed"
	}
	return fmt.Errorf("column %q %s from %s to %s: old files hold %s values, which cannot be read as %s (%s)", path, how, o.canon, n.canon, o.canon, n.canon, allowedChanges)
}

func narrowing(o, n *typ) bool {
	return o.tag == tInt64 && n.tag == tInt32 || o.tag == tFloat64 && n.tag == tFloat32 || o.tag == tDecimal && n.tag == tDecimal
}

// checkStructWidening allows a struct to keep its fields, in order, each
// widened or unchanged, and to gain fields after them.
func checkStructWidening(path string, o, n *typ) error {
	var errs []error
	for i, of := range o.fields {
		if i >= len(n.fields) || n.fields[i].name != of.name {
			errs = append(errs, fmt.Errorf("column %q: struct field %q was removed, renamed or moved: old files hold it, and struct fields keep their order (new ones go at the end)", path, of.name))
			break
		}
		if err := checkWidening(path+"."+of.name, of.typ, n.fields[i].typ); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// partitionLayout describes the directory layout PartitionBy gives, so that
// spelling the default out ("hour(ts)" for time column ts) is no change.
func partitionLayout(s *Schema) string {
	keys, err := s.partitionKeys()
	if err != nil {
		return strings.Join(s.PartitionBy, ", ")
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := "record time"
		if k.col >= 0 {
			name = s.Columns[k.col].Name
		}
		switch k.fn {
		case partDay:
			parts[i] = "day(" + name + ")"
		case partHour:
			parts[i] = "hour(" + name + ")"
		default:
			parts[i] = name
		}
	}
	return strings.Join(parts, ", ")
}
