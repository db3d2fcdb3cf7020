//go:build tools

// Package tools pins the Kubernetes control-plane programs that the test suite
// builds from the Go module proxy (see build.sh).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
