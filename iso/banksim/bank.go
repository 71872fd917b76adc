package banksim

// WithBank names the bank the simulator plays: every log line carries it
// (bank=CODE), so a test that runs many banks in one process can tell
// which one carried a message.
func WithBank(code string) Option { return func(s *Sim) { s.bank = code } }
