package scheduler

import (
	"testing"
	"time"
)

func TestReadyEventCarriesWarmUp(t *testing.T) {
	p := newProc()
	p.handleLine([]byte(`{"event":"listening","addr":"127.0.0.1:1"}`))
	p.handleLine([]byte(`{"event":"ready","load_ms":900,"warmup_requests":10,"warmup_ms":230}`))
	select {
	case <-p.ready:
	default:
		t.Fatal("not ready after the ready event")
	}
	if p.warmUp != 10 || p.warmTime != 230*time.Millisecond || p.loadTime != 900*time.Millisecond {
		t.Errorf("warm-up %d in %s, load %s; want 10 in 230ms, load 900ms", p.warmUp, p.warmTime, p.loadTime)
	}
}
