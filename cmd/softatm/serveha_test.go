package main

import (
	"flag"
	"reflect"
	"testing"
)

// TestServeHAFlags: the Sentinels' list and master name, the commit lock
// and the log format are read from the flags, and a log format other than
// text or json is refused before anything starts.
func TestServeHAFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		args      []string
		sentinels []string
		master    string
		lock      bool
		wantErr   bool
	}{
		{"defaults", nil, nil, "softatm", true, false},
		{"sentinels", []string{"-redis-sentinels", " 127.0.0.1:26379, 127.0.0.1:26380,,", "-redis-master", "atm"},
			[]string{"127.0.0.1:26379", "127.0.0.1:26380"}, "atm", true, false},
		{"no commit lock", []string{"-ledger-commit-lock=false"}, nil, "softatm", false, false},
		{"json logs", []string{"-log-format", "json"}, nil, "softatm", true, false},
		{"unknown log format", []string{"-log-format", "xml"}, nil, "softatm", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c ServeConfig
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			c.flags(fs)
			if err := fs.Parse(append([]string{"-database", "postgres://x@h1:5432,h2:5432/db?target_session_attrs=read-write",
				"-secret", "s"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.RedisSentinels, tc.sentinels) || c.RedisMaster != tc.master || c.LedgerCommitLock != tc.lock {
				t.Fatalf("sentinels %q master %q lock %v, want %q %q %v", c.RedisSentinels, c.RedisMaster, c.LedgerCommitLock,
					tc.sentinels, tc.master, tc.lock)
			}
			if err := c.check(); (err != nil) != tc.wantErr {
				t.Fatalf("check: %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
