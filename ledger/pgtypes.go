package ledger

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// RegisterTypes teaches a connection's type map to send and read
// github.com/google/uuid's UUID as PostgreSQL's binary uuid. Without it,
// pgx goes through the type's driver.Valuer: every UUID argument is
// formatted as text and parsed back (8% of the switch's CPU in a hot load
// run, pprof, issue 19). Call it from the pool's AfterConnect.
func RegisterTypes(m *pgtype.Map) {
	t := &pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}}
	m.RegisterType(t)
	// The array type names its element type: register it anew so that
	// []uuid.UUID arguments take the same path.
	m.RegisterType(&pgtype.Type{Name: "_uuid", OID: pgtype.UUIDArrayOID, Codec: &pgtype.ArrayCodec{ElementType: t}})
}

// uuidCodec is pgx's uuid codec that also takes uuid.UUID directly.
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	switch value.(type) {
	case uuid.UUID, *uuid.UUID: // a pointer, too, implements driver.Valuer
		if next := c.UUIDCodec.PlanEncode(m, oid, format, pgtype.UUID{}); next != nil {
			return uuidEncodePlan{next}
		}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

func (c uuidCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*uuid.UUID); ok {
		if next := c.UUIDCodec.PlanScan(m, oid, format, &pgtype.UUID{}); next != nil {
			return uuidScanPlan{next}
		}
	}
	return c.UUIDCodec.PlanScan(m, oid, format, target)
}

type uuidEncodePlan struct{ next pgtype.EncodePlan }

func (p uuidEncodePlan) Encode(value any, buf []byte) ([]byte, error) {
	u, ok := value.(uuid.UUID)
	if ptr, isPtr := value.(*uuid.UUID); isPtr {
		if ptr == nil {
			return nil, nil // NULL
		}
		u, ok = *ptr, true
	}
	if !ok {
		return nil, fmt.Errorf("cannot encode %T as a uuid", value)
	}
	return p.next.Encode(pgtype.UUID{Bytes: u, Valid: true}, buf)
}

type uuidScanPlan struct{ next pgtype.ScanPlan }

func (p uuidScanPlan) Scan(src []byte, dst any) error {
	if src == nil {
		return fmt.Errorf("cannot scan NULL into %T", dst)
	}
	var u pgtype.UUID
	if err := p.next.Scan(src, &u); err != nil {
		return err
	}
	*dst.(*uuid.UUID) = u.Bytes
	return nil
}
