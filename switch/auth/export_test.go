package auth

import "context"

// HoldBcryptSlot takes source's bcrypt slot as a login would, so that a
// test can stand for a flood that keeps it busy.
func (s *Service) HoldBcryptSlot(ctx context.Context, source string) (release func(), err error) {
	return s.slots.acquire(ctx, source)
}
