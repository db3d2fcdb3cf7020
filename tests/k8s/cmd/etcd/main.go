// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 as a
// dependency of this module (the etcd release's own module cannot be installed
// with `go install` because of its replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
