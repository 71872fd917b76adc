package atmswitch

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/softatm/softatm"
)

// bankRangesRefresh is how long the switch serves the banks' account ranges
// before it reads them again: an edit by `softatm admin bank -ranges` is in
// force on every running instance within it.
const bankRangesRefresh = 5 * time.Second

// rangeRe is one account range: a prefix of account numbers or of card
// numbers (a BIN), 1 to 19 digits.
var rangeRe = regexp.MustCompile(`^[0-9]{1,19}$`)

// CheckRanges refuses a malformed range, or a prefix named twice (in one
// bank's list or across banks: the owner of an account must be one bank).
// ranges maps a bank's code to its prefixes.
func CheckRanges(ranges map[string][]string) error {
	owner := map[string]string{}
	for bank, prefixes := range ranges {
		for _, p := range prefixes {
			if !rangeRe.MatchString(p) {
				return softatm.Errorf(softatm.EInvalid, "bank %s: range %q must be 1 to 19 digits", bank, p)
			}
			if other, dup := owner[p]; dup {
				return softatm.Errorf(softatm.EConflict, "range %s is both %s's and %s's", p, other, bank)
			}
			owner[p] = bank
		}
	}
	return nil
}

// ParseRanges splits a comma-separated list of prefixes.
func ParseRanges(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// refreshed is what the switch reads of the banks table (their ranges,
// their limits), served until it is bankRangesRefresh old.
type refreshed[T any] struct {
	mu sync.Mutex
	at time.Time
	v  T
	ok bool
}

// get returns the value, loading it again when it is older than every.
func (r *refreshed[T]) get(now time.Time, every time.Duration, load func() (T, error)) (T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ok || now.Sub(r.at) >= every {
		v, err := load()
		if err != nil {
			var zero T
			return zero, err
		}
		r.v, r.at, r.ok = v, now, true
	}
	return r.v, nil
}

// bankOf returns the bank that owns an account: the one whose longest
// prefix holds it, "" when none does.
func (s *Service) bankOf(ctx context.Context, account string) (string, error) {
	byPrefix, err := s.ranges.get(s.now(), bankRangesRefresh, func() (map[string]string, error) {
		all, err := s.store.BankRanges(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the banks' account ranges: %w", err)
		}
		byPrefix := map[string]string{} // prefix → bank
		for bank, prefixes := range all {
			for _, p := range prefixes {
				byPrefix[p] = bank
			}
		}
		return byPrefix, nil
	})
	if err != nil {
		return "", err
	}
	for n := min(len(account), 19); n > 0; n-- {
		if bank, ok := byPrefix[account[:n]]; ok {
			return bank, nil
		}
	}
	return "", nil
}
