// Command client-go-elector is the client-go peer of koc-example-leader: the
// same flags, client-go's tools/leaderelection with a LeaseLock and
// ReleaseOnCancel, readiness gated on leadership, and one line per transition
// on stdout, so that tests and benchmarks can run both side by side on one
// Lease and compare.
//
// Output lines (one per event, wall-clock microseconds):
//
//	unix_us=... event=started-leading identity=a
//	unix_us=... event=new-leader identity=a leader=b
//	unix_us=... event=stopped-leading identity=a
//	unix_us=... event=exit identity=a code=0
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

var outMu sync.Mutex

func emit(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("unix_us=%d %s\n", time.Now().UnixMicro(), fmt.Sprintf(format, args...))
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "Path to a kubeconfig file.")
	identity := flag.String("identity", os.Getenv("HOSTNAME"), "Identity in the Lease.")
	leaseDuration := flag.Duration("leader-elect-lease-duration", 15*time.Second, "Lease duration.")
	renewDeadline := flag.Duration("leader-elect-renew-deadline", 10*time.Second, "Renew deadline.")
	retryPeriod := flag.Duration("leader-elect-retry-period", 2*time.Second, "Retry period.")
	name := flag.String("leader-elect-resource-name", "koc-example-leader", "Name of the Lease.")
	namespace := flag.String("leader-elect-resource-namespace", "default", "Namespace of the Lease.")
	probeAddr := flag.String("health-probe-bind-address", ":8081", "Address of /readyz and /healthz (\"0\" disables).")
	_ = flag.String("metrics-bind-address", "0", "Accepted for compatibility with koc-example-leader; unused.")
	_ = flag.Bool("leader-elect-gate-readiness", true, "Accepted for compatibility; readiness is always gated.")
	_ = flag.Duration("tick-interval", time.Second, "Accepted for compatibility; unused.")
	qps := flag.Float64("kube-api-qps", 0, "Client-side QPS limit (0: client-go default).")
	flag.Parse()

	if *identity == "" {
		fmt.Fprintln(os.Stderr, "client-go-elector: --identity is required")
		os.Exit(2)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "client-go-elector: --kubeconfig=%s: %v\n", *kubeconfig, err)
		os.Exit(2)
	}
	if *qps > 0 {
		cfg.QPS = float32(*qps)
		cfg.Burst = int(*qps * 2)
	}
	cfg.UserAgent = "client-go-elector"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "client-go-elector: %v\n", err)
		os.Exit(2)
	}

	var leading atomic.Bool
	if *probeAddr != "0" && *probeAddr != "" {
		ln, err := net.Listen("tcp", *probeAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "client-go-elector: --health-probe-bind-address=%s: %v\n", *probeAddr, err)
			os.Exit(2)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if leading.Load() {
				fmt.Fprintln(w, "ok")
				return
			}
			http.Error(w, "[-]leader failed: not the leader", http.StatusInternalServerError)
		})
		go func() { _ = http.Serve(ln, mux) }()
	}

	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		emit("event=signal identity=%s", *identity)
		cancel()
	}()

	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: *name, Namespace: *namespace},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: *identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   *leaseDuration,
		RenewDeadline:   *renewDeadline,
		RetryPeriod:     *retryPeriod,
		ReleaseOnCancel: true,
		Name:            *name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				leading.Store(true)
				emit("event=started-leading identity=%s", *identity)
			},
			OnStoppedLeading: func() {
				leading.Store(false)
				emit("event=stopped-leading identity=%s", *identity)
			},
			OnNewLeader: func(holder string) {
				emit("event=new-leader identity=%s leader=%s", *identity, holder)
			},
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "client-go-elector: %v\n", err)
		os.Exit(2)
	}
	// Run returns when the context is cancelled (after the release, with
	// ReleaseOnCancel) or when leadership is lost; a replica that lost it
	// competes again until it is told to stop.
	for ctx.Err() == nil {
		le.Run(ctx)
	}
	emit("event=exit identity=%s code=0", *identity)
}
