// Command controller-runtime-bench is the controller-runtime peer of koc's
// bench-controller replica: a controller on ConfigMaps labelled bench=1 in one
// namespace, with leader election on a Lease, that either does nothing
// (--mode=noop) or writes each object once (--mode=write: a merge patch that
// adds the annotation bench/done-LEASE).  It prints one line per event:
//
//	unix_us=... event=started | leading | synced | first-reconcile
//	unix_us=... event=reconciled-all n=N      (N distinct keys done)
//	unix_us=... event=latency us=U key=K      (an object carried bench/sent)
//
// so that scripts/bench.sh controller measures it exactly as it measures koc.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

var outMu sync.Mutex

func emit(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("unix_us=%d %s\n", time.Now().UnixMicro(), fmt.Sprintf(format, args...))
}

type reconciler struct {
	client.Client
	write    bool
	doneKey  string // annotation bench/done-LEASE: each run writes its own
	expect   int
	done     sync.Map // key -> struct{}
	count    atomic.Int64
	first    atomic.Bool
	lastSent sync.Map // key -> string
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.first.CompareAndSwap(false, true) {
		emit("event=first-reconcile")
	}
	var cm corev1.ConfigMap
	if err := r.Get(ctx, req.NamespacedName, &cm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	key := req.String()
	if sent, ok := cm.Annotations["bench/sent"]; ok {
		if prev, _ := r.lastSent.Load(key); prev != sent {
			r.lastSent.Store(key, sent)
			if us, err := strconv.ParseInt(sent, 10, 64); err == nil {
				emit("event=latency us=%d key=%s", time.Now().UnixMicro()-us, key)
			}
		}
	}
	if r.write && cm.Annotations[r.doneKey] == "" {
		patch := []byte(`{"metadata":{"annotations":{"` + r.doneKey + `":"1"}}}`)
		if err := r.Patch(ctx, &cm, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return ctrl.Result{}, err
		}
	}
	if _, loaded := r.done.LoadOrStore(key, struct{}{}); !loaded {
		if n := r.count.Add(1); int(n) == r.expect {
			emit("event=reconciled-all n=%d", n)
		}
	}
	return ctrl.Result{}, nil
}

func main() {
	// A flag set of its own: controller-runtime registers --kubeconfig on
	// the global one.
	flag := flag.NewFlagSet("controller-runtime-bench", flag.ExitOnError)
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "Path to a kubeconfig file.")
	identity := flag.String("identity", "", "Identity in the Lease.")
	namespace := flag.String("namespace", "bench", "Namespace of the ConfigMaps and the Lease.")
	mode := flag.String("mode", "noop", "noop or write.")
	expect := flag.Int("expect", 0, "Number of objects: print reconciled-all when all are done.")
	workers := flag.Int("workers", 1, "MaxConcurrentReconciles.")
	lease := flag.String("lease", "bench-controller-runtime", "Name of the Lease.")
	leaseDuration := flag.Duration("leader-elect-lease-duration", 2*time.Second, "Lease duration.")
	renewDeadline := flag.Duration("leader-elect-renew-deadline", 1500*time.Millisecond, "Renew deadline.")
	retryPeriod := flag.Duration("leader-elect-retry-period", 250*time.Millisecond, "Retry period.")
	qps := flag.Float64("kube-api-qps", 0, "Client QPS (0: client-go's default 5, burst 10... raised to 1000 for a fair comparison).")
	_ = flag.Parse(os.Args[1:])

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "controller-runtime-bench: --kubeconfig=%s: %v\n", *kubeconfig, err)
		os.Exit(2)
	}
	// koc has no client-side rate limit by default; neither does this peer.
	cfg.QPS, cfg.Burst = 1000, 2000
	if *qps > 0 {
		cfg.QPS, cfg.Burst = float32(*qps), int(*qps*2)
	}
	emit("event=started identity=%s", *identity)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		LeaderElection:          true,
		LeaderElectionID:        *lease,
		LeaderElectionNamespace: *namespace,
		LeaseDuration:           leaseDuration,
		RenewDeadline:           renewDeadline,
		RetryPeriod:             retryPeriod,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{*namespace: {}},
			ByObject: map[client.Object]cache.ByObject{
				&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(labels.Set{"bench": "1"})},
			},
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "controller-runtime-bench: %v\n", err)
		os.Exit(1)
	}
	r := &reconciler{Client: mgr.GetClient(), write: *mode == "write", doneKey: "bench/done-" + *lease, expect: *expect}
	if err := ctrl.NewControllerManagedBy(mgr).For(&corev1.ConfigMap{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: *workers}).Complete(r); err != nil {
		fmt.Fprintf(os.Stderr, "controller-runtime-bench: %v\n", err)
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	// controller-runtime creates the controller's informer when the
	// controller starts, after the election (its standbys keep no cache by
	// default): the cache is synced once that informer has listed.
	go func() {
		select {
		case <-mgr.Elected():
			emit("event=leading")
		case <-ctx.Done():
			return
		}
		inf, err := mgr.GetCache().GetInformer(ctx, &corev1.ConfigMap{})
		if err == nil {
			for !inf.HasSynced() && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			emit("event=synced")
		}
	}()
	if err := mgr.Start(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "controller-runtime-bench: %v\n", err)
		os.Exit(1)
	}
}
