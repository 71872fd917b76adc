package iso_test

// Tests that each kill a mutation of one guard (issue 20; the list is
// scripts/mutate/guards.txt). Each was seen to fail with its guard changed.

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/softatm/softatm/iso"
)

// lyingIssuer answers every network message with 00 and every financial
// request with the reply that reply builds from it: an issuer that breaks
// the profile in ways banksim never does.
func lyingIssuer(t *testing.T, reply func(req *iso.Message) *iso.Message) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				for {
					req, _, err := iso.ReadMessage(conn)
					if err != nil {
						return
					}
					var resp *iso.Message
					if req.MTI == iso.MTINetworkRequest {
						r := *req
						r.MTI, r.ResponseCode = iso.ResponseMTI(req.MTI), iso.RCApproved
						resp = &r
					} else {
						resp = reply(req)
					}
					b, err := iso.Pack(resp)
					if err != nil {
						t.Errorf("packing the lie: %v", err)
						return
					}
					if err := iso.WriteFrame(conn, b); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRepliesThatBreakTheProfile: a 0110 "approved" without an approval
// code, and any reply whose response code is not two digits, are errors
// (ErrBadReply), never answers: the switch then reverses instead of
// issuing a code on an approval it cannot capture.
func TestRepliesThatBreakTheProfile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		lie  func(r *iso.Message)
	}{
		{"approved without approval code", func(r *iso.Message) { r.ResponseCode, r.ApprovalCode = iso.RCApproved, "" }},
		{"response code not digits", func(r *iso.Message) { r.ResponseCode, r.ApprovalCode = "0A", "A00001" }},
		{"response code of spaces", func(r *iso.Message) { r.ResponseCode, r.ApprovalCode = "  ", "A00001" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := lyingIssuer(t, func(req *iso.Message) *iso.Message {
				r := *req
				r.MTI = iso.ResponseMTI(req.MTI)
				tc.lie(&r)
				return &r
			})
			c := upClient(t, addr)
			resp, err := c.Authorize(ctx, authReq(c, acctRich, 100_000))
			if !errors.Is(err, iso.ErrBadReply) {
				t.Fatalf("Authorize: %+v, %v; want %v", resp, err, iso.ErrBadReply)
			}
			if tc.name == "approved without approval code" {
				return // an advice carries no approval code in its reply
			}
			a := authReq(c, acctRich, 100_000)
			if resp, err := c.Advise(ctx, adviceFor(c, a, "A00001")); !errors.Is(err, iso.ErrBadReply) {
				t.Fatalf("Advise: %+v, %v; want %v", resp, err, iso.ErrBadReply)
			}
		})
	}
}
