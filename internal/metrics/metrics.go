// Package metrics holds easd's Prometheus metrics: one registry per daemon (never the
// global default one), the per-service series the gateway and the scheduler feed, and
// the /metrics handler.
//
// Series (all labelled by service):
//
//	eas_requests_total{service,code}            counter: answered predict requests by HTTP status
//	eas_request_duration_seconds{service}       histogram: gateway latency, request in to answer out
//	eas_processor_duration_seconds{service}     histogram: time inside the worker's processor, as the
//	                                            worker reports it (X-EAS-Processor-Time)
//	eas_batch_size{service}                     histogram: requests per inference, as the worker
//	                                            reports it (X-EAS-Batch-Size: services with batching)
//	eas_inflight_requests{service}              gauge: requests inside the gateway now (queue depth)
//	eas_ready_instances{service}                gauge: instances taking traffic
//	eas_worker_restarts_total{service}          counter: instances that exited and are restarted
//	eas_gateway_retries_total{service}          counter: requests resent to another instance after a dial error
//	eas_rate_limited_total{service}             counter: requests refused with 429
//
// plus the Go runtime and process collectors. Unknown service names are never used as
// labels (anyone can send them), so the label sets stay bounded by the deployed services.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every OpenEAS series.
const Namespace = "eas"

// LatencyBuckets are the request latency buckets in seconds: 100µs to 60s, dense where
// small models live (sub-millisecond) and where timeouts bite (seconds).
var LatencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

// BatchBuckets are the batch size buckets.
var BatchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}

// InFlightFunc reports the requests in flight per service (yield once per service).
type InFlightFunc func(yield func(service string, n int))

// Metrics is one daemon's metrics. Its methods are safe for concurrent use; the ones
// called per request (ObserveRequest, Retry, RateLimited) cost a map read and a few
// atomic adds.
type Metrics struct {
	reg *prometheus.Registry

	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	processor  *prometheus.HistogramVec
	batch      *prometheus.HistogramVec
	ready      *prometheus.GaugeVec
	restarts   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	limited    *prometheus.CounterVec
	inflightFn atomic.Pointer[InFlightFunc]
	inflight   *prometheus.Desc

	services sync.Map // service name → *serviceSeries: resolved children, so requests skip label hashing
}

// serviceSeries caches one service's children of the per-request vectors.
type serviceSeries struct {
	latency, processor, batch prometheus.Observer
	retries, limited          prometheus.Counter
	ok                        prometheus.Counter // code 200, by far the most common
	codes                     sync.Map           // int code → prometheus.Counter
}

// New returns metrics on a new registry, with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "requests_total",
			Help: "Predict requests answered by the gateway, by service and HTTP status code.",
		}, []string{"service", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "request_duration_seconds",
			Help:    "Gateway latency of predict requests: from the request's arrival to the end of the answer.",
			Buckets: LatencyBuckets,
		}, []string{"service"}),
		processor: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "processor_duration_seconds",
			Help:    "Time spent in the worker's processor per request, as reported by the worker.",
			Buckets: LatencyBuckets,
		}, []string{"service"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "batch_size",
			Help:    "Requests merged into the inference that answered a request, as reported by the worker.",
			Buckets: BatchBuckets,
		}, []string{"service"}),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "ready_instances",
			Help: "Instances of the service that take traffic.",
		}, []string{"service"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "worker_restarts_total",
			Help: "Instances that exited unexpectedly and are being restarted.",
		}, []string{"service"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "gateway_retries_total",
			Help: "Requests resent to another instance because the first could not be reached or was being withdrawn.",
		}, []string{"service"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rate_limited_total",
			Help: "Requests refused with 429 because the service's rate_limit was reached.",
		}, []string{"service"}),
		inflight: prometheus.NewDesc(Namespace+"_inflight_requests",
			"Predict requests of the service inside the gateway now (waiting for or being served by an instance).",
			[]string{"service"}, nil),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.latency, m.processor, m.batch, m.ready, m.restarts, m.retries, m.limited,
		prometheus.CollectorFunc(m.collectInFlight),
	)
	return m
}

// Registry returns the registry, to register more collectors on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text (or negotiated) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SetInFlightSource sets where eas_inflight_requests comes from (the gateway's own
// accounting, read at scrape time so requests pay nothing for it).
func (m *Metrics) SetInFlightSource(f InFlightFunc) { m.inflightFn.Store(&f) }

func (m *Metrics) collectInFlight(ch chan<- prometheus.Metric) {
	fp := m.inflightFn.Load()
	if fp == nil {
		return
	}
	(*fp)(func(service string, n int) {
		ch <- prometheus.MustNewConstMetric(m.inflight, prometheus.GaugeValue, float64(n), service)
	})
}

func (m *Metrics) series(service string) *serviceSeries {
	if s, ok := m.services.Load(service); ok {
		return s.(*serviceSeries)
	}
	s := &serviceSeries{
		latency:   m.latency.WithLabelValues(service),
		processor: m.processor.WithLabelValues(service),
		batch:     m.batch.WithLabelValues(service),
		retries:   m.retries.WithLabelValues(service),
		limited:   m.limited.WithLabelValues(service),
		ok:        m.requests.WithLabelValues(service, "200"),
	}
	actual, _ := m.services.LoadOrStore(service, s)
	return actual.(*serviceSeries)
}

// ObserveRequest records one answered request of a known service: its status code, the
// gateway latency, and the processor time and batch size the worker reported
// (processor < 0 or batch <= 0: not reported).
func (m *Metrics) ObserveRequest(service string, code int, total, processor time.Duration, batch int) {
	s := m.series(service)
	if code == http.StatusOK {
		s.ok.Inc()
	} else {
		c, ok := s.codes.Load(code)
		if !ok {
			c, _ = s.codes.LoadOrStore(code, m.requests.WithLabelValues(service, strconv.Itoa(code)))
		}
		c.(prometheus.Counter).Inc()
	}
	s.latency.Observe(total.Seconds())
	if processor >= 0 {
		s.processor.Observe(processor.Seconds())
	}
	if batch > 0 {
		s.batch.Observe(float64(batch))
	}
}

// Retry counts a request resent to another instance.
func (m *Metrics) Retry(service string) { m.series(service).retries.Inc() }

// RateLimited counts a request refused with 429.
func (m *Metrics) RateLimited(service string) { m.series(service).limited.Inc() }

// SetReady sets the number of the service's instances that take traffic.
func (m *Metrics) SetReady(service string, n int) { m.ready.WithLabelValues(service).Set(float64(n)) }

// WorkerRestart counts an instance of the service that exited and is restarted.
func (m *Metrics) WorkerRestart(service string) { m.restarts.WithLabelValues(service).Inc() }

// Forget drops every series of a deleted service, so a later service of the same name
// starts from zero and the registry does not keep dead names.
func (m *Metrics) Forget(service string) {
	m.services.Delete(service)
	l := prometheus.Labels{"service": service}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.requests, m.latency, m.processor, m.batch, m.ready, m.restarts, m.retries, m.limited} {
		v.DeletePartialMatch(l)
	}
}
