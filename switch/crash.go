package atmswitch

import (
	"os"
	"syscall"
)

// Crash points name the places on the payout path where a process can die
// with work half done. When SOFTATM_CRASH_AT names one, the process kills
// itself there with SIGKILL, as a power cut would; the fault tests start
// `softatm serve` with each in turn and prove that, after a restart, every
// hold still ends captured or released and no code pays twice. Unset, a
// crash point costs one string comparison.
const (
	CrashBeforeCommit   = "confirm_before_commit"  // cash counted, nothing recorded yet
	CrashAfterCommit    = "confirm_after_commit"   // paid and 0220 queued, not sent
	CrashAfterSend      = "outbox_after_send"      // 0220/0420 answered, answer not recorded
	CrashBeforeReversal = "outbox_before_reversal" // 0420 about to leave
	CrashAfterAuthorize = "create_after_0110"      // hold approved at the bank, not recorded
	// Deposits (deposit.go).
	CrashDepositBeforeSend  = "deposit_before_0200"  // crediting recorded, the 0200 not sent
	CrashDepositAfter0210   = "deposit_after_0210"   // the bank credited the account, not recorded
	CrashDepositAfterCommit = "deposit_after_commit" // credited and recorded, the receipt not answered
)

var crashAt = os.Getenv("SOFTATM_CRASH_AT")

func crashPoint(name string) {
	if crashAt != "" && crashAt == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
