package ledger

import "testing"

// TestSizeBuckets: every batch size falls in exactly the bucket its label
// names, so the committer's time per unit by size is not misfiled.
func TestSizeBuckets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int
		name string
	}{
		{1, "1"}, {2, "2-4"}, {4, "2-4"}, {5, "5-8"}, {8, "5-8"}, {9, "9-16"}, {16, "9-16"},
		{17, "17-32"}, {32, "17-32"}, {33, "33-64"}, {64, "33-64"}, {65, "65+"}, {1 << 20, "65+"},
	} {
		if got := SizeBucketName(sizeBucket(tc.n)); got != tc.name {
			t.Errorf("a batch of %d units: bucket %q, want %q", tc.n, got, tc.name)
		}
	}
}
