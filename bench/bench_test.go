// Package bench holds softatm's benchmarks: these Go micro-benchmarks of the
// hot pieces (code signing, ISO 8583 packing, one ledger posting) and the
// end-to-end load generator in bench/cmd/loadgen. `make bench` runs both and
// prints the figures; bench/RESULTS.md records a run. Nothing here asserts on
// speed.
package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/ledger/schema/schematest"
	"github.com/softatm/softatm/switch/code"
	switchschema "github.com/softatm/softatm/switch/schema"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

func benchKeyring(b *testing.B) *code.Keyring {
	b.Helper()
	now := time.Now()
	store := code.NewMemKeyStore()
	if _, err := code.Rotate(context.Background(), store, "KBENCH01", now); err != nil {
		b.Fatal(err)
	}
	kr := code.NewKeyring(store)
	if err := kr.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	return kr
}

func benchPayload() code.Payload {
	return code.Payload{WithdrawalID: uuid.New(), Amount: 500_000, Currency: "704",
		Expiry: time.Now().Add(6 * time.Hour).Truncate(time.Second), Bank: "MB"}
}

func BenchmarkCodeSign(b *testing.B) {
	kr := benchKeyring(b)
	ctx := context.Background()
	p := benchPayload()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Sign(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodeVerify(b *testing.B) {
	kr := benchKeyring(b)
	ctx := context.Background()
	qr, err := kr.Sign(ctx, benchPayload())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Verify(ctx, qr); err != nil {
			b.Fatal(err)
		}
	}
}

// isoMessages builds one message of each type the profile uses, the way the
// switch and the issuer build them.
func isoMessages(b *testing.B) map[string]*iso.Message {
	b.Helper()
	now := time.Now()
	auth := iso.AuthRequest{STAN: "000123", RRN: "633012345678", TransmittedAt: now, Account: "9704000000000011",
		Amount: 500_000, Currency: "704", TerminalID: "SATM0001", CardAcceptor: "SOFTATM", AcceptorName: "SOFTATM CASH-OUT SWITCH"}
	m0100, err := auth.Message("970400")
	if err != nil {
		b.Fatal(err)
	}
	adv := iso.AdviceRequest{STAN: "000124", RRN: auth.RRN, TransmittedAt: now, Account: auth.Account, Amount: auth.Amount,
		Currency: "704", ApprovalCode: "A1B2C3", TerminalID: "KLS00101", CardAcceptor: "LS-001", AcceptorName: "Buu dien Dong Dang",
		Original: iso.Original{MTI: "0100", STAN: auth.STAN, TransmittedAt: now}}
	m0220, err := adv.Message(iso.MTIAdvice, "970400")
	if err != nil {
		b.Fatal(err)
	}
	m0420, err := adv.Message(iso.MTIReversal, "970400")
	if err != nil {
		b.Fatal(err)
	}
	reply := func(req *iso.Message, mti string) *iso.Message {
		r := *req
		r.MTI, r.ResponseCode = mti, iso.RCApproved
		if mti == iso.MTIAuthResponse {
			r.ApprovalCode = "A1B2C3"
		}
		return &r
	}
	m0800 := &iso.Message{MTI: iso.MTINetworkRequest, TransmissionDateTime: iso.TransmissionTime(now), STAN: "000125",
		AcquirerID: "970400", NetworkCode: "301"}
	return map[string]*iso.Message{
		"0100": m0100, "0110": reply(m0100, iso.MTIAuthResponse),
		"0220": m0220, "0230": reply(m0220, iso.MTIAdviceResponse),
		"0420": m0420, "0430": reply(m0420, iso.MTIReversalResponse),
		"0800": m0800,
	}
}

var mtis = []string{"0100", "0110", "0220", "0230", "0420", "0430", "0800"}

func BenchmarkISOPack(b *testing.B) {
	msgs := isoMessages(b)
	for _, mti := range mtis {
		b.Run(mti, func(b *testing.B) {
			m := msgs[mti]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := iso.Pack(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkISOUnpack(b *testing.B) {
	msgs := isoMessages(b)
	for _, mti := range mtis {
		b.Run(mti, func(b *testing.B) {
			raw, err := iso.Pack(msgs[mti])
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := iso.Unpack(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLedgerPosting commits one payout unit (post the hold, move the
// cash out of the till, book a fee) per operation, one caller at a time,
// on the tests' PostgreSQL (fsync off there: this is the ledger's own cost,
// not the disk's; bench/cmd/loadgen measures with fsync on). The holds are
// booked before the timer starts.
func BenchmarkLedgerPosting(b *testing.B) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, schematest.MustMigratedDB(b, switchschema.All()...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	l := ledger.New(pool)
	b.Cleanup(l.Close)
	for _, a := range []struct {
		code  string
		flags ledger.Flags
	}{
		{ledger.ReceivableCode("MB"), 0}, {ledger.AccountInFlight, 0}, {ledger.AccountFees, 0},
		{ledger.AccountSettlement, 0}, {ledger.TillCode("LS-001"), ledger.FlagCreditsMustNotExceedDebits},
	} {
		if err := l.EnsureAccount(ctx, a.code, "704", a.flags); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Replenish(ctx, "LS-001", 1<<50, "704", uuid.New()); err != nil {
		b.Fatal(err)
	}
	ids := make([]uuid.UUID, b.N)
	for i := range ids {
		ids[i] = uuid.New()
		if _, err := l.Commit(ctx, ledger.Unit{Transfers: []ledger.Transfer{ledger.HoldTransfer(ids[i], "MB", 100_000, "704")}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := l.Commit(ctx, ledger.Unit{Transfers: ledger.PayoutTransfers(ids[i], "MB", "LS-001", 100_000, 2000, "704")}); err != nil {
			b.Fatal(err)
		}
	}
}
