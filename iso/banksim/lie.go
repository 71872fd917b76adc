package banksim

import (
	"strconv"

	"github.com/softatm/softatm/iso"
)

// The values a lying reply carries. Each differs from whatever the request
// sent, and keeps the field's length so the reply still packs.
const (
	lieCurrency      = "840"          // US dollar, the example
	lieCurrencyAlt   = "978"          // euro, when the request itself was in dollars
	lieProc          = "310000"       // balance inquiry instead of a cash withdrawal
	lieProcAlt       = "010000"       // when the request was not a withdrawal
	lieAccountAbsent = "970499990000" // named when the request carried no account (an 0800)
	lieRRNAbsent     = "LIE000000000" // carried when the request had no RRN (an 0800)
)

// lies returns the reply_* fault a reply to mti must carry, or "". A reply
// fault chosen by account (or for every request) lies only in the 0110: the
// mode plays a bank that answers a withdrawal wrongly, and the switch's
// reversal that follows must get an honest 0430. Chosen by MTI, it lies in
// the reply to that MTI.
func lies(f Fault, mti string, byMTI bool) string {
	switch f.Kind {
	case FaultReplyAmount, FaultReplyRRN, FaultReplyAccount, FaultReplyCurrency, FaultReplyProc:
		if byMTI || mti == iso.MTIAuthRequest || mti == iso.MTIFinancialRequest {
			return f.Kind
		}
	}
	return ""
}

// refuses reports whether f refuses a message with this MTI:
// advice_refuse bites 0220/0221 and reversal_refuse 0420/0421, however the
// fault was chosen.
func refuses(f Fault, mti string) bool {
	switch f.Kind {
	case FaultAdviceRefuse:
		return mti == iso.MTIAdvice || mti == iso.MTIAdviceRepeat
	case FaultReversalRefuse:
		return mti == iso.MTIReversal || mti == iso.MTIReversalRepeat
	}
	return false
}

// saidAmount is the amount a reply_amount 0110 states for a request of
// amount: half of it (110,000 → 55,000), or one more when halving would not
// change it (0 or 1). The bank holds this amount.
func saidAmount(amount int64) int64 {
	if amount >= 2 {
		return amount / 2
	}
	return amount + 1
}

// tell rewrites reply so that it carries the lie. Every lie replaces one
// field with a value the request did not have.
func tell(lie string, reply *iso.Message) {
	switch lie {
	case FaultReplyAmount:
		n, err := iso.ParseAmount(reply.Amount)
		if err != nil {
			n = 0 // no amount in the request (an 0800): state one anyway
		}
		reply.Amount, _ = iso.FormatAmount(saidAmount(n))
	case FaultReplyRRN:
		reply.RRN = otherRRN(reply.RRN)
	case FaultReplyAccount:
		switch {
		case reply.Account != "":
			reply.Account = otherAccount(reply.Account)
		case reply.PAN != "":
			reply.PAN = otherAccount(reply.PAN)
		default:
			reply.Account = lieAccountAbsent
		}
	case FaultReplyCurrency:
		if reply.Currency == lieCurrency {
			reply.Currency = lieCurrencyAlt
		} else {
			reply.Currency = lieCurrency
		}
	case FaultReplyProc:
		if reply.ProcessingCode == lieProc {
			reply.ProcessingCode = lieProcAlt
		} else {
			reply.ProcessingCode = lieProc
		}
	}
}

// otherRRN changes the first character of a 12-character RRN, so the lie
// keeps the field's length.
func otherRRN(rrn string) string {
	if len(rrn) != 12 {
		return lieRRNAbsent
	}
	first := byte('9')
	if rrn[0] == '9' {
		first = '8'
	}
	return string(first) + rrn[1:]
}

// otherAccount changes the last digit of an account (0→1, ..., 9→0), so the
// lie names a neighbouring account of the same length and shows in the
// masked form too.
func otherAccount(account string) string {
	last := account[len(account)-1]
	if last < '0' || last > '9' {
		return account[:len(account)-1] + "0"
	}
	d, _ := strconv.Atoi(string(last))
	return account[:len(account)-1] + strconv.Itoa((d+1)%10)
}
