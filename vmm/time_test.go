package vmm

import (
	"testing"
	"time"
)

func TestScaleFor(t *testing.T) {
	for _, hz := range []uint64{1_000_000, 100_000_000, 999_999_999, 1_000_000_000, 2_599_996_000, 3_700_000_000, 5_000_000_000} {
		s := scaleFor(hz)
		// One second of ticks must convert to one second (±1 µs).
		got := s.apply(hz)
		if d := int64(got) - int64(time.Second); d < -1000 || d > 1000 {
			t.Errorf("%d Hz: %d ticks → %d ns (mul %#x shift %d)", hz, hz, got, s.mul, s.shift)
		}
		// And 10 ms.
		if got := s.apply(hz / 100); got < 9_999_000 || got > 10_001_000 {
			t.Errorf("%d Hz: 10 ms → %d ns", hz, got)
		}
	}
}
