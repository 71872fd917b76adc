package softatm

import (
	"context"
	"log/slog"
)

// A transaction is followed through every layer's logs by its id: the HTTP
// handler, the switch, the ISO 8583 link (which knows only STAN and RRN), the
// outbox and the ledger. The layer that knows the id puts it in the context
// (WithLogAttrs); a logger whose handler is wrapped by ContextHandler adds it
// to every line written with that context (slog's *Context methods).

type logAttrsKey struct{}

// WithLogAttrs returns ctx carrying attrs, added to every log line written
// with it through a ContextHandler, after those ctx already carries.
func WithLogAttrs(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev, _ := ctx.Value(logAttrsKey{}).([]slog.Attr)
	all := make([]slog.Attr, 0, len(prev)+len(attrs))
	return context.WithValue(ctx, logAttrsKey{}, append(append(all, prev...), attrs...))
}

// ContextHandler wraps h: a record logged with a context carries the
// context's WithLogAttrs attributes.
func ContextHandler(h slog.Handler) slog.Handler { return contextHandler{h} }

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if attrs, _ := ctx.Value(logAttrsKey{}).([]slog.Attr); len(attrs) > 0 {
		r = r.Clone()
		r.AddAttrs(attrs...)
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
