// Package metrics serves a worker's Prometheus metrics and health check:
// tasks started and ended by state, run times, tasks in flight, receive
// latency, and errors from SQS and S3.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/taskiq-go/taskiq-go/plan"
)

// Metrics implements worker.Metrics with Prometheus collectors.
type Metrics struct {
	reg      *prometheus.Registry
	started  *prometheus.CounterVec
	ended    *prometheus.CounterVec
	runTime  *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	receive  *prometheus.HistogramVec
	received *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

// New registers the collectors in a registry of their own (with the Go and
// process collectors), so that two workers in one process do not clash.
func New(worker string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	labels := prometheus.Labels{"worker": worker}
	f := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "taskiq", Name: name, Help: help, ConstLabels: labels}
	}
	m := &Metrics{
		reg:     reg,
		started: prometheus.NewCounterVec(prometheus.CounterOpts(f("tasks_started_total", "Commands started.")), []string{"queue"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts(f("tasks_ended_total",
			"Attempts ended, by state: succeeded, failed, cancelled, timed_out.")), []string{"queue", "state"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "taskiq", Name: "task_run_seconds",
			Help: "Run time of attempts.", ConstLabels: labels,
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400}}, []string{"queue", "state"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts(f("tasks_in_flight", "Commands running now.")), []string{"queue"}),
		receive: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "taskiq", Name: "receive_seconds",
			Help: "Latency of SQS receive calls, long-poll waits included.", ConstLabels: labels,
			Buckets: []float64{0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 20}}, []string{"queue"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts(f("messages_received_total", "Messages received.")), []string{"queue"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts(f("backend_errors_total",
			"Failed calls to SQS and S3, by service and operation.")), []string{"service", "op"}),
	}
	reg.MustRegister(m.started, m.ended, m.runTime, m.inFlight, m.receive, m.received, m.errors)
	return m
}

// TaskStarted implements worker.Metrics.
func (m *Metrics) TaskStarted(queue string) {
	m.started.WithLabelValues(queue).Inc()
	m.inFlight.WithLabelValues(queue).Inc()
}

// TaskEnded implements worker.Metrics.
func (m *Metrics) TaskEnded(queue string, state plan.State, took time.Duration) {
	m.inFlight.WithLabelValues(queue).Dec()
	m.ended.WithLabelValues(queue, string(state)).Inc()
	m.runTime.WithLabelValues(queue, string(state)).Observe(took.Seconds())
}

// Received implements worker.Metrics.
func (m *Metrics) Received(queue string, n int, took time.Duration) {
	m.receive.WithLabelValues(queue).Observe(took.Seconds())
	m.received.WithLabelValues(queue).Add(float64(n))
}

// BackendError implements worker.Metrics.
func (m *Metrics) BackendError(service, op string) {
	m.errors.WithLabelValues(service, op).Inc()
}

// Handler serves /metrics, and /healthz answering 200 while healthy
// returns nil and 503 with the reason otherwise.
func (m *Metrics) Handler(healthy func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
