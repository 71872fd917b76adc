package softatm

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestContextHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(ContextHandler(slog.NewJSONHandler(&buf, nil))).With("bank", "MB")
	ctx := WithLogAttrs(context.Background(), slog.String("withdrawal", "w-1"))
	ctx = WithLogAttrs(ctx, slog.String("kind", "advice"))
	log.WarnContext(ctx, "bank request failed", "stan", "000001")
	log.Info("no context attrs")
	dec := json.NewDecoder(&buf)
	for _, want := range []map[string]string{
		{"msg": "bank request failed", "bank": "MB", "withdrawal": "w-1", "kind": "advice", "stan": "000001"},
		{"msg": "no context attrs", "bank": "MB", "withdrawal": ""},
	} {
		var line map[string]any
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			got, _ := line[k].(string)
			if got != v {
				t.Errorf("line %v: %s = %q, want %q", line, k, got, v)
			}
		}
	}
}
