package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/fixtures"
	"github.com/softatm/softatm/ledger"
	atmswitch "github.com/softatm/softatm/switch"
	"github.com/softatm/softatm/switch/auth"
	"github.com/softatm/softatm/switch/code"
)

// openPool opens the database named by -database / DATABASE_URL.
func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, errors.New("DATABASE_URL (or -database) is required")
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	return pool, nil
}

// admin is the operator's toolbox; every operation is idempotent, so a
// setup script can be run again safely.
type admin struct {
	pool   *pgxpool.Pool
	ledger *ledger.Ledger
	auth   *auth.Service
}

// newAdmin needs the switch's secret (-secret of serve, SOFTATM_SECRET):
// bank-client secrets are stored as hashes keyed from it.
func newAdmin(pool *pgxpool.Pool, switchSecret string) *admin {
	return &admin{pool: pool, ledger: ledger.New(pool), auth: auth.New(pool, auth.WithClientSecretKey([]byte(switchSecret)))}
}

func (a *admin) close() { a.ledger.Close() }

// openingCashNS derives the ids of opening-cash transfers, so that loading
// the same post office twice does not put its cash in twice.
var openingCashNS = uuid.MustParse("6f1d0c5e-6a49-4b8e-9c55-2f1c4d7e9a10")

// bank creates or updates a bank. ranges (account-number or BIN prefixes)
// replace the bank's own when given; nil leaves them as they are. A prefix
// another bank owns is refused. Running switches pick the change up within
// seconds (see atmswitch.bankRangesRefresh).
func (a *admin) bank(ctx context.Context, code, name string, fee int64, currency string, ranges []string) error {
	if ranges != nil {
		all, err := atmswitch.ReadBankRanges(ctx, a.pool)
		if err != nil {
			return err
		}
		all[code] = ranges
		if err := atmswitch.CheckRanges(all); err != nil {
			return err
		}
	}
	if _, err := a.pool.Exec(ctx, `INSERT INTO banks (code, name, fee_amount, account_ranges) VALUES ($1, $2, $3, COALESCE($4, '{}'::TEXT[]))
		ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, fee_amount = EXCLUDED.fee_amount,
			account_ranges = COALESCE($4, banks.account_ranges)`, code, name, fee, ranges); err != nil {
		return fmt.Errorf("bank %s: %w", code, err)
	}
	return a.ledger.EnsureAccount(ctx, ledger.ReceivableCode(code), currency, 0)
}

// bankLimitColumns are a bank's own limits: flag, help, and the field of
// atmswitch.BankLimits (the banks column of the same name).
var bankLimitColumns = []struct {
	flag, help string
	field      func(*atmswitch.BankLimits) **int64
}{
	{"amount-min", "smallest withdrawal", func(l *atmswitch.BankLimits) **int64 { return &l.AmountMin }},
	{"amount-max", "largest withdrawal", func(l *atmswitch.BankLimits) **int64 { return &l.AmountMax }},
	{"amount-multiple", "withdrawals are a multiple of this", func(l *atmswitch.BankLimits) **int64 { return &l.AmountMultiple }},
	{"account-daily-max", "most one account may withdraw in 24 hours (0: no daily limit)",
		func(l *atmswitch.BankLimits) **int64 { return &l.AccountDailyMax }},
}

// bankLimits sets the bank's own limits named in flags (flag name →
// value): a number sets it, "default" returns it to the switch's
// configured default, "" leaves it. Running switches pick the change up
// within seconds.
func (a *admin) bankLimits(ctx context.Context, code string, flags map[string]*string) error {
	var cur atmswitch.BankLimits
	if err := a.pool.QueryRow(ctx, `SELECT amount_min, amount_max, amount_multiple, account_daily_max FROM banks WHERE code = $1`,
		code).Scan(&cur.AmountMin, &cur.AmountMax, &cur.AmountMultiple, &cur.AccountDailyMax); err != nil {
		return fmt.Errorf("bank %s: %w", code, err)
	}
	changed := false
	for _, l := range bankLimitColumns {
		switch v := strings.TrimSpace(*flags[l.flag]); v {
		case "":
			continue
		case "default":
			*l.field(&cur) = nil
		default:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("-%s %q: a number of dong or \"default\"", l.flag, v)
			}
			*l.field(&cur) = &n
		}
		changed = true
	}
	if !changed {
		return nil
	}
	if err := atmswitch.CheckBankLimits(cur, atmswitch.DefaultConfig().NoteUnit); err != nil {
		return err
	}
	_, err := a.pool.Exec(ctx, `UPDATE banks SET amount_min = $2, amount_max = $3, amount_multiple = $4, account_daily_max = $5
		WHERE code = $1`, code, cur.AmountMin, cur.AmountMax, cur.AmountMultiple, cur.AccountDailyMax)
	return err
}

// bankCutoff sets a bank's business-day cut-off (ledger.Cutoff). Running
// switches date payouts by it within seconds.
func (a *admin) bankCutoff(ctx context.Context, code, cutoff string) error {
	c, err := ledger.ParseCutoff(cutoff)
	if err != nil {
		return err
	}
	_, err = a.pool.Exec(ctx, `UPDATE banks SET cutoff = $2::TIME WHERE code = $1`, code, c.String())
	return err
}

func (a *admin) client(ctx context.Context, id, bank, secret string) error {
	err := a.auth.CreateBankClient(ctx, id, bank, secret)
	if softatm.ErrorCode(err) == softatm.EConflict {
		return nil // already there
	}
	return err
}

// callback registers a client's callback URL and secret ("-" as the URL
// removes them). The secret is stored sealed with the switch's secret.
func (a *admin) callback(ctx context.Context, id, url, secret, switchSecret string) error {
	if url == "-" {
		url, secret = "", ""
	}
	return atmswitch.SetCallback(ctx, a.pool, []byte(switchSecret), id, url, secret)
}

func (a *admin) postOffice(ctx context.Context, code, name, location string, openingCash int64, currency string) error {
	if _, err := a.pool.Exec(ctx, `INSERT INTO post_offices (code, name, location) VALUES ($1, $2, $3)
		ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, location = EXCLUDED.location`, code, name, location); err != nil {
		return fmt.Errorf("post office %s: %w", code, err)
	}
	if err := a.ledger.EnsureAccount(ctx, ledger.TillCode(code), currency, ledger.FlagCreditsMustNotExceedDebits); err != nil {
		return err
	}
	if openingCash > 0 {
		id := uuid.NewSHA1(openingCashNS, []byte(code))
		if err := a.ledger.Replenish(ctx, code, openingCash, currency, id); err != nil {
			return fmt.Errorf("opening cash of %s: %w", code, err)
		}
	}
	return nil
}

func (a *admin) kiosk(ctx context.Context, id, postOffice string) error {
	if len(id) != 8 {
		return fmt.Errorf("kiosk id %q must be 8 characters (ISO field 41)", id)
	}
	_, err := a.pool.Exec(ctx, `INSERT INTO kiosks (id, post_office) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, postOffice)
	return err
}

func (a *admin) user(ctx context.Context, username, password string, role auth.Role, postOffice, kiosk string) error {
	_, err := a.auth.CreateUser(ctx, username, password, role, postOffice, kiosk)
	if softatm.ErrorCode(err) == softatm.EConflict {
		return nil
	}
	return err
}

// ensureKey makes sure a signing key is active, generating one if needed.
func ensureKey(ctx context.Context, pool *pgxpool.Pool) error {
	// Public halves only: this needs no KEK, also once serve has sealed
	// the seeds (a second `make run`). A key made here is written in clear
	// and sealed by the next serve started with -key-file.
	store := code.NewPGKeyStore(pool, code.WithPublicsOnly())
	keys, err := store.Keys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.State == code.StateActive {
			return nil
		}
	}
	_, err = code.Rotate(ctx, store, newKeyID(time.Now()), time.Now())
	return err
}

func newKeyID(now time.Time) string {
	return "K" + now.UTC().Format("060102") + fmt.Sprintf("%X", now.Unix()%16)
}

// loadDemo loads the demo fixtures: banks and their app clients, the
// switch's own accounts, post offices with opening cash, kiosks, tellers,
// finance staff, and an active signing key.
func (a *admin) loadDemo(ctx context.Context, d fixtures.Demo) error {
	for _, acc := range []string{ledger.AccountInFlight, ledger.AccountFees, ledger.AccountSettlement} {
		if err := a.ledger.EnsureAccount(ctx, acc, d.Currency, 0); err != nil {
			return err
		}
	}
	for _, b := range d.Banks {
		if err := a.bank(ctx, b.Code, b.Name, b.Fee, d.Currency, b.Ranges); err != nil {
			return err
		}
		if err := a.client(ctx, b.ClientID, b.Code, b.ClientSecret); err != nil {
			return fmt.Errorf("client %s: %w", b.ClientID, err)
		}
	}
	for _, p := range d.PostOffices {
		if err := a.postOffice(ctx, p.Code, p.Name, p.Location, p.OpeningCash, d.Currency); err != nil {
			return err
		}
		if err := a.kiosk(ctx, p.Kiosk, p.Code); err != nil {
			return err
		}
		if err := a.user(ctx, p.Teller.Username, p.Teller.Password, auth.RoleTeller, p.Code, p.Kiosk); err != nil {
			return fmt.Errorf("teller %s: %w", p.Teller.Username, err)
		}
	}
	for _, f := range d.Finance {
		if err := a.user(ctx, f.Username, f.Password, auth.RoleFinance, "", ""); err != nil {
			return fmt.Errorf("finance user %s: %w", f.Username, err)
		}
	}
	return ensureKey(ctx, a.pool)
}

func runAdmin(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("admin: bank | client | post-office | kiosk | user | replenish | load-demo | check")
	}
	fs := flag.NewFlagSet("admin "+args[0], flag.ContinueOnError)
	url := fs.String("database", os.Getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	currency := fs.String("currency", "704", "ISO 4217 numeric currency")
	codeF := fs.String("code", "", "bank or post office code")
	name := fs.String("name", "", "bank or post office name")
	fee := fs.Int64("fee", 0, "bank: fee per withdrawal, in dong")
	ranges := fs.String("ranges", "", "bank: the account-number or card BIN prefixes it owns, comma-separated (replaces the bank's; empty: unchanged)")
	limitFlags := map[string]*string{}
	for _, l := range bankLimitColumns {
		limitFlags[l.flag] = fs.String(l.flag, "", "bank: "+l.help+", in dong (\"default\": the switch's; empty: unchanged)")
	}
	cutoff := fs.String("cutoff", "", "bank: business-day cut-off HH:MM[:SS], Asia/Ho_Chi_Minh (a payout later than it is the next day's; default 23:59:59; empty: unchanged)")
	var linkFlags bankLinkFlags
	linkFlags.register(fs)
	location := fs.String("location", "", "post office: location")
	cash := fs.Int64("opening-cash", 0, "post office: opening cash, in dong")
	cashCap := fs.Int64("cash-cap", -1, "post office: the till's cash cap (its insured amount), in dong: a deposit that would go over it is refused before the cash is counted (0: none; -1: unchanged)")
	id := fs.String("id", "", "client or kiosk id")
	bank := fs.String("bank", "", "client: bank code")
	secret := fs.String("secret", "", "client: secret")
	callbackURL := fs.String("callback-url", "", "client: POST every state change of its withdrawals to this http(s) URL (\"-\" removes it; empty: unchanged)")
	callbackSecret := fs.String("callback-secret", "", "client: the key (16+ characters) that signs its callbacks (HMAC-SHA-256)")
	switchSecret := fs.String("switch-secret", os.Getenv("SOFTATM_SECRET"), "client, load-demo: the secret `serve` runs with, which keys the stored client-secret hashes (SOFTATM_SECRET)")
	po := fs.String("post-office", "", "kiosk or teller: post office code")
	kiosk := fs.String("kiosk", "", "teller: kiosk id")
	username := fs.String("username", "", "user: login name")
	password := fs.String("password", "", "user: password (8 characters or more)")
	role := fs.String("role", "teller", "user: teller | finance | admin")
	amount := fs.Int64("amount", 0, "replenish: cash delivered to the post office, in dong")
	ref := fs.String("ref", "", "replenish: the delivery's reference (a retry with the same ref books it once)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	pool, err := openPool(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	a := newAdmin(pool, *switchSecret)
	defer a.close()
	switch args[0] {
	case "bank":
		if _, _, err := linkFlags.plan(*codeF); err != nil {
			return err // before any write: a refused flag changes nothing
		}
		var rs []string
		if *ranges != "" {
			rs = atmswitch.ParseRanges(*ranges)
		}
		err = a.bank(ctx, *codeF, *name, *fee, *currency, rs)
		if err == nil {
			err = a.bankLimits(ctx, *codeF, limitFlags)
		}
		if err == nil && *cutoff != "" {
			err = a.bankCutoff(ctx, *codeF, *cutoff)
		}
		if err == nil {
			err = bankLink(ctx, pool, *codeF, linkFlags)
		}
	case "client":
		err = a.client(ctx, *id, *bank, *secret)
		if err == nil && *callbackURL != "" {
			err = a.callback(ctx, *id, *callbackURL, *callbackSecret, *switchSecret)
		}
	case "post-office":
		err = a.postOffice(ctx, *codeF, *name, *location, *cash, *currency)
		if err == nil && *cashCap >= 0 {
			_, err = pool.Exec(ctx, `UPDATE post_offices SET cash_cap = $2 WHERE code = $1`, *codeF, *cashCap)
		}
	case "kiosk":
		err = a.kiosk(ctx, *id, *po)
	case "user":
		err = a.user(ctx, *username, *password, auth.Role(*role), *po, *kiosk)
	case "replenish":
		if *po == "" || *amount <= 0 || *ref == "" {
			return errors.New("admin replenish -post-office P -amount N -ref DELIVERY-REF")
		}
		err = a.ledger.Replenish(ctx, *po, *amount, *currency, uuid.NewSHA1(openingCashNS, []byte(*po+"/"+*ref)))
	case "load-demo":
		var d fixtures.Demo
		if d, err = fixtures.LoadDemo(); err == nil {
			err = a.loadDemo(ctx, d)
		}
	case "check":
		return check(ctx, pool)
	default:
		return fmt.Errorf("admin: unknown operation %q", args[0])
	}
	if err == nil {
		fmt.Println("ok")
	}
	return err
}

// errCheckFailed makes `softatm admin check` exit non-zero.
var errCheckFailed = errors.New("invariants violated")

// check runs the ledger's invariants (its own tables) and then the
// switch's (its withdrawals against the ledger), and prints one line per
// invariant.
func check(ctx context.Context, pool *pgxpool.Pool) error {
	failed := false
	for _, run := range []func(context.Context, *pgxpool.Pool) ([]ledger.CheckResult, error){ledger.Check, atmswitch.Check} {
		results, err := run(ctx, pool)
		if err != nil {
			return err
		}
		for _, r := range results {
			mark := "ok  "
			if !r.OK {
				mark, failed = "FAIL", true
			}
			fmt.Printf("%s %s: %s\n", mark, r.Name, r.Detail)
		}
	}
	if failed {
		return errCheckFailed
	}
	return nil
}
