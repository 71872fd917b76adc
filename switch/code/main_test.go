package code

import (
	"os"
	"testing"

	"github.com/softatm/softatm/fixtures/localsrv"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }
