package replay

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client defaults. The gate must fail fast: a slow Redis is worse than a
// down one, since the caller falls back to the database only on an error.
const (
	DefaultDialTimeout  = 500 * time.Millisecond
	DefaultReadTimeout  = 250 * time.Millisecond
	DefaultWriteTimeout = 250 * time.Millisecond
	// DefaultMaxRetries is one retry of a failed command (a dropped pooled
	// connection), not more: every command here is safe to repeat, but a
	// long retry loop would only delay the fallback.
	DefaultMaxRetries = 1
	// DefaultDialerRetries is how many times one connection is dialled
	// (go-redis would try 5 times, 100 ms apart, before failing a command).
	DefaultDialerRetries = 1
)

// NewClient opens a Redis client for url (redis://host:port/db) with the
// fail-fast defaults above; timeouts given in the URL's query win.
func NewClient(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parsing Redis URL: %w", err)
	}
	// ParseURL leaves unset fields zero; go-redis fills its own defaults
	// in NewClient, so zero here means "not in the URL".
	if opt.DialTimeout == 0 {
		opt.DialTimeout = DefaultDialTimeout
	}
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = DefaultReadTimeout
	}
	if opt.WriteTimeout == 0 {
		opt.WriteTimeout = DefaultWriteTimeout
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = DefaultMaxRetries
	}
	if opt.DialerRetries == 0 {
		opt.DialerRetries = DefaultDialerRetries
	}
	return redis.NewClient(opt), nil
}
