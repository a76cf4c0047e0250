package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice/schemas"
)

// The audit log is a table like any other: auth's events (every admin
// change, every refused request) are records of the internal stream
// AuditStream, which the internal pipeline of the same name writes into
// table AuditTable, so operators query it with SQL (it needs an admin key
// or query:sluice_audit).
const (
	AuditStream   = InternalPrefix + "_audit"
	AuditTable    = "sluice_audit"
	InternalAudit = "audit" // Pipeline.Internal of the audit pipeline
)

// AuditSchema is the audit table's schema: one row per event, partitioned
// by day.
func AuditSchema() *schemas.Schema {
	return &schemas.Schema{
		Columns: []schemas.Column{
			{Name: "time", Type: schemas.Timestamp, NotNull: true},
			{Name: "key", Type: schemas.String},
			{Name: "listener", Type: schemas.String},
			{Name: "action", Type: schemas.String},
			{Name: "object", Type: schemas.String},
			{Name: "allowed", Type: schemas.Bool},
			{Name: "status", Type: schemas.Int32},
			{Name: "remote", Type: schemas.String},
			{Name: "reason", Type: schemas.String},
		},
		TimeColumn:  "time",
		PartitionBy: []string{"day(time)"},
	}
}

// EnsureAudit creates the audit stream, table and pipeline, each only if
// it is missing (a start that failed half way is finished by the next).
func (r *Registry) EnsureAudit(ctx context.Context) error {
	r.fnMu.Lock()
	defer r.fnMu.Unlock()
	if _, ok := r.Table(AuditTable); !ok {
		t := Table{Name: AuditTable, Schema: *AuditSchema()}
		if err := t.normalize(); err != nil {
			return fmt.Errorf("BUG: audit table is invalid: %w", err)
		}
		if err := createObject(ctx, r, "tables", &r.tables, t.Name, t); err != nil && !errors.Is(err, ErrExists) {
			return err // ErrExists: another process made it meanwhile
		}
	}
	if _, ok := r.Stream(AuditStream); !ok {
		s := Stream{Name: AuditStream, Partitions: 1}
		if err := s.normalize(); err != nil {
			return fmt.Errorf("BUG: audit stream is invalid: %w", err)
		}
		if err := r.addStream(ctx, s); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	if _, ok := r.Pipeline(AuditStream); ok {
		return nil
	}
	p := Pipeline{Name: AuditStream, Stream: AuditStream, Table: AuditTable, Internal: InternalAudit}
	if err := p.normalize(); err != nil {
		return fmt.Errorf("BUG: audit pipeline is invalid: %w", err)
	}
	if err := createObject(ctx, r, "pipelines", &r.pipelines, p.Name, p); err != nil && !errors.Is(err, ErrExists) {
		return err
	}
	return nil
}
