package deploy

import (
	"context"
)

// collectBundles removes the sealed bundles no service can start from any more: those of
// superseded versions, of failed updates and of deleted services (store.BundlesInUse says
// which are kept). It runs after every operation, and skips while a build is in progress:
// that build's own end collects again. A removed bundle that is wanted after all (a modify
// back to an earlier service.json) is sealed again from the cached plugin results.
func (m *Manager) collectBundles(ctx context.Context) {
	if !m.builds.TryLock() {
		return
	}
	defer m.builds.Unlock()
	keep, err := m.store.BundlesInUse(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("collect unused bundles", "err", err)
		}
		return
	}
	n, freed, err := m.opts.Bundles.Prune(keep)
	if n > 0 {
		m.log.Info("removed unused bundles", "count", n, "bytes", freed)
	}
	if err != nil {
		m.log.Warn("collect unused bundles", "err", err)
	}
}
