package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

// runEtcd is etcd's own main (server/main.go in etcd-io/etcd): etcdmain.Main
// exits the process itself on error, and returns only when etcd stops cleanly.
func runEtcd() int {
	etcdmain.Main(os.Args)
	return 0
}
