package iso_test

import (
	"testing"

	"github.com/softatm/softatm/iso"
)

func TestAcceptorLocation(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, city, country, want string
	}{
		{"Buu dien Dong Dang", "Dong Dang", "VN", "Buu dien Dong Dang       Dong Dang    VN"},
		// Cut to each part's width, folded to ASCII.
		{"Bưu điện Văn hoá xã Hồng Phong", "Thành phố Lạng Sơn", "VN", "Buu dien Van hoa xa Hong Thanh pho LanVN"},
		{"", "", "VN", "                                      VN"},
	} {
		got := iso.AcceptorLocation(c.name, c.city, c.country)
		if len(got) != 40 {
			t.Errorf("%q: %d characters, want 40", got, len(got))
		}
		if got != c.want {
			t.Errorf("AcceptorLocation(%q, %q) = %q, want %q", c.name, c.city, got, c.want)
		}
	}
}
