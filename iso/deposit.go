package iso

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Deposits (cash in) on the link. Written down here because DESIGN.md is
// silent on them:
//
//   - A deposit is a 0200 financial request with processing code 210000
//     (field 3: transaction type 21, deposit; from account 00; to the
//     default account 00), answered by a 0210. The bank credits the
//     account when it approves: there is no hold and no completion advice,
//     so the approval is final and the switch records it at once.
//   - A deposit without a usable 0210 in time is reversed with a 0420 whose
//     field 3 is 210000 and whose field 90 names the 0200 (original MTI
//     0200): the bank debits back what it credited, or remembers that the
//     0200 must not be credited if it arrives later.
//   - A walk-in's account is verified with a 0100 whose processing code is
//     330000 (33, account verification) and whose amount is zero; the
//     bank's 0110 approves it (00) and carries the holder's name in field 48
//     (LLL ans, folded to ASCII by the bank), or declines it (14: no such
//     account). It moves no money and needs no reversal.

// Processing codes (field 3) of deposits.
const (
	ProcessingDeposit       = "210000"
	ProcessingAccountVerify = "330000"
)

// The financial request's MTIs.
const (
	MTIFinancialRequest  = "0200"
	MTIFinancialResponse = "0210"
)

// holderNameMax bounds the name read from field 48: a longer one is cut.
const holderNameMax = 100

// CreditRequest is a 0200 deposit: credit Amount to Account. Its fields are
// an AuthRequest's.
type CreditRequest AuthRequest

// Message builds the 0200 for r.
func (r CreditRequest) Message(acquirerID string) (*Message, error) {
	m := &Message{MTI: MTIFinancialRequest}
	c := common{r.STAN, r.RRN, r.TransmittedAt, r.Account, r.Amount, r.Currency, r.TerminalID, r.CardAcceptor, r.AcceptorName}
	if err := c.fill(m, acquirerID); err != nil {
		return nil, fmt.Errorf("0200: %w", err)
	}
	if r.Amount <= 0 {
		return nil, fmt.Errorf("0200: amount %d: want a positive amount", r.Amount)
	}
	m.ProcessingCode = ProcessingDeposit
	return m, nil
}

// Credit sends a 0200 deposit and waits for its 0210. The reply reaches
// here only after CheckReply (so field 4 is the amount asked); Amount is
// still read from the reply, as what the bank credited.
func (c *Client) Credit(ctx context.Context, r CreditRequest) (AuthResponse, error) {
	m, err := r.Message(c.o.acquirerID)
	if err != nil {
		return AuthResponse{}, err
	}
	reply, err := c.request(ctx, m)
	if err != nil {
		return AuthResponse{STAN: r.STAN, RRN: r.RRN}, err
	}
	return approval(reply, r.STAN, r.RRN)
}

// approval reads an approving or declining reply to a 0100 or 0200.
func approval(reply *Message, stan, rrn string) (AuthResponse, error) {
	amount, err := ParseAmount(reply.Amount)
	if err != nil {
		return AuthResponse{STAN: stan, RRN: rrn}, fmt.Errorf("%w: %s field 4: %v", ErrBadReply, reply.MTI, err)
	}
	resp := AuthResponse{
		ResponseCode: reply.ResponseCode,
		ApprovalCode: strings.TrimRight(reply.ApprovalCode, " "),
		STAN:         reply.STAN,
		RRN:          reply.RRN,
		Amount:       amount,
		Currency:     reply.Currency,
	}
	if resp.ResponseCode == RCApproved && resp.ApprovalCode == "" {
		return resp, fmt.Errorf("%w: %s approved without an approval code", ErrBadReply, reply.MTI)
	}
	return resp, nil
}

// VerifyRequest asks the bank whose account Account is, by name.
type VerifyRequest struct {
	STAN          string
	RRN           string
	TransmittedAt time.Time
	Account       string
	Currency      string
	TerminalID    string
	CardAcceptor  string
	AcceptorName  string
}

// VerifyResponse is the bank's answer: ResponseCode 00 with the holder's
// name, or a decline (14: no such account).
type VerifyResponse struct {
	ResponseCode string
	HolderName   string
}

// Message builds the 0100 account verification for r.
func (r VerifyRequest) Message(acquirerID string) (*Message, error) {
	m := &Message{MTI: MTIAuthRequest}
	c := common{r.STAN, r.RRN, r.TransmittedAt, r.Account, 0, r.Currency, r.TerminalID, r.CardAcceptor, r.AcceptorName}
	if err := c.fill(m, acquirerID); err != nil {
		return nil, fmt.Errorf("0100 verification: %w", err)
	}
	m.ProcessingCode = ProcessingAccountVerify
	return m, nil
}

// Verify sends a 0100 account verification and waits for its 0110.
func (c *Client) Verify(ctx context.Context, r VerifyRequest) (VerifyResponse, error) {
	m, err := r.Message(c.o.acquirerID)
	if err != nil {
		return VerifyResponse{}, err
	}
	reply, err := c.request(ctx, m)
	if err != nil {
		return VerifyResponse{}, err
	}
	resp := VerifyResponse{ResponseCode: reply.ResponseCode}
	if resp.ResponseCode != RCApproved {
		return resp, nil
	}
	name := strings.TrimSpace(ASCIIFold(reply.AdditionalData))
	if name == "" {
		return resp, fmt.Errorf("%w: 0110 verification approved without a holder name", ErrBadReply)
	}
	if len(name) > holderNameMax {
		name = name[:holderNameMax]
	}
	resp.HolderName = name
	return resp, nil
}
