package main

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// benchDeposit is the amount of every bench deposit: the bench's
// withdrawal amount, so that a mixed run moves the same cash both ways.
const benchDeposit = benchAmount

// depositFlow runs one deposit (cash in) from its code to credited: the
// bank app asks for a deposit code, the teller scans it and confirms the
// counted cash; the confirm answers only once the bank credited it, so a
// 200 is the end of the flow. A credited deposit counts as a completed
// flow, its time from code to receipt as "credited".
func (c *client) depositFlow(ctx context.Context, win window) {
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	begin := time.Now()
	var v struct {
		ID uuid.UUID `json:"id"`
		QR string    `json:"qr_payload"`
	}
	account := c.bank.Accounts[c.rng.IntN(len(c.bank.Accounts))]
	c.starts++
	if !c.timed("deposit_create", win, func() (int, string, error) {
		return c.call(ctx, "POST", "/v1/deposits", c.bankHeaders(), map[string]any{
			"account": account, "amount": benchDeposit, "currency": "VND", "holder_name": "Bench Citizen", "phone_last4": "5611",
		}, &v)
	}) {
		return
	}
	if !c.timed("deposit_scan", win, func() (int, string, error) {
		return c.call(ctx, "POST", "/v1/teller/scan", c.tellerHeaders(), map[string]string{"qr": v.QR}, nil)
	}) {
		return
	}
	if !c.timed("deposit_confirm", win, func() (int, string, error) {
		return c.call(ctx, "POST", "/v1/teller/deposits/confirm", c.tellerHeaders(),
			map[string]any{"deposit_id": v.ID, "cash_counted": true}, nil)
	}) {
		return
	}
	end := time.Now()
	c.flows++
	if win.contains(end) {
		c.lat["credited"] = append(c.lat["credited"], end.Sub(begin))
		c.done = append(c.done, end)
	}
}
