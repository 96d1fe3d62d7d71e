package deploy

import (
	"context"
)

// collectBundles removes what no service can start from any more and no build is using: the
// sealed bundles of superseded versions, of failed updates and of deleted services
// (store.BundlesInUse says which are kept), and the fetched model trees, which only builds
// read; and the least recently used plugin results beyond Options.PluginCacheMaxBytes. It runs
// after every operation. It never waits: while a build runs it leaves the
// request for that build's operation, which collects at its end, and while another
// collection runs, that one goes round again. A removed bundle that is wanted after all (a
// modify back to an earlier service.json) is sealed again from a new fetch and the cached
// plugin results.
func (m *Manager) collectBundles() {
	m.collectWanted.Store(true)
	for m.collectWanted.Load() {
		if !m.builds.TryLock() {
			return
		}
		m.collectWanted.Store(false)
		m.collect(m.baseCt)
		m.builds.Unlock()
	}
}

func (m *Manager) collect(ctx context.Context) {
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
	n, freed, err = m.opts.Bundles.TrimPlugins(m.opts.PluginCacheMaxBytes)
	if n > 0 {
		m.log.Info("plugin result cache trimmed", "removed", n, "bytes", freed, "limit_bytes", m.opts.PluginCacheMaxBytes)
	}
	if err != nil {
		m.log.Warn("trim plugin result cache", "err", err)
	}
	n, freed, err = m.opts.Bundles.PruneModels()
	if n > 0 {
		m.log.Debug("removed fetched model trees", "count", n, "bytes", freed)
	}
	if err != nil {
		m.log.Warn("collect fetched model trees", "err", err)
	}
}
