// Package words writes an amount of Vietnamese dong in words, the way a
// receipt or a cheque says it: 500000 is "Năm trăm nghìn đồng".
//
// The rules, as Vietnamese writes numbers:
//   - the number is read in groups of three digits: nghìn (10^3), triệu
//     (10^6), tỷ (10^9); above tỷ the groups start again (nghìn tỷ, triệu
//     tỷ), so 10^12 is "một nghìn tỷ";
//   - a group after a higher one reads its hundreds even when they are zero
//     ("một triệu không trăm năm mươi nghìn"), and a lone unit after a zero
//     tens digit is joined with "lẻ" ("một trăm lẻ năm");
//   - tens: 10 is "mười", 20 to 90 are "hai mươi" to "chín mươi";
//   - units after a tens digit of 2 or more: 1 is "mốt", 4 is "tư"; after
//     any tens digit (10 included) 5 is "lăm". Elsewhere they are "một",
//     "bốn", "năm".
//
// "Nghìn" and "lẻ" are the northern forms ("ngàn", "linh" in the south);
// Lạng Sơn, the first deployment, is in the north.
//
// This package must not import any other softatm package.
package words

import "strings"

var digits = [10]string{"không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"}

// groupNames are the names of the three-digit groups below tỷ.
var groupNames = [3]string{"", "nghìn", "triệu"}

// VND returns amount in words with its currency: "Năm trăm nghìn đồng".
// Zero is "Không đồng"; a negative amount reads "Âm" first.
func VND(amount int64) string {
	var s string
	switch {
	case amount == 0:
		s = "không"
	case amount < 0:
		// -amount overflows for the smallest int64; read it unsigned.
		s = "âm " + number(uint64(-(amount+1))+1)
	default:
		s = number(uint64(amount))
	}
	return capitalize(s) + " đồng"
}

// number reads n > 0 in words, lower case.
func number(n uint64) string {
	const ty = 1_000_000_000
	if n >= ty {
		high, low := n/ty, n%ty
		out := number(high) + " tỷ"
		if low > 0 {
			out += " " + belowTy(low, true)
		}
		return out
	}
	return belowTy(n, false)
}

// belowTy reads 0 < n < 10^9. after says a higher group came before, so a
// leading group reads its zero hundreds.
func belowTy(n uint64, after bool) string {
	var parts []string
	groups := [3]uint64{n % 1000, n / 1000 % 1000, n / 1_000_000}
	for i := 2; i >= 0; i-- {
		g := groups[i]
		if g == 0 {
			continue
		}
		p := group(g, after)
		if groupNames[i] != "" {
			p += " " + groupNames[i]
		}
		parts = append(parts, p)
		after = true
	}
	return strings.Join(parts, " ")
}

// group reads 0 < g < 1000; full says it follows a higher group, so its
// hundreds are read even when zero.
func group(g uint64, full bool) string {
	h, t, u := g/100, g/10%10, g%10
	var w []string
	if h > 0 || full {
		w = append(w, digits[h], "trăm")
	}
	switch {
	case t == 0 && u == 0:
	case t == 0:
		if len(w) > 0 {
			w = append(w, "lẻ")
		}
		w = append(w, digits[u])
	case t == 1:
		w = append(w, "mười")
	default:
		w = append(w, digits[t], "mươi")
	}
	if t > 0 && u > 0 {
		switch {
		case u == 1 && t >= 2:
			w = append(w, "mốt")
		case u == 4 && t >= 2:
			w = append(w, "tư")
		case u == 5:
			w = append(w, "lăm")
		default:
			w = append(w, digits[u])
		}
	}
	return strings.Join(w, " ")
}

func capitalize(s string) string {
	for i, r := range s {
		return strings.ToUpper(string(r)) + s[i+len(string(r)):]
	}
	return s
}
