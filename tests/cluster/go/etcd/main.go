// Command etcd is etcd's own server entry point, built from the etcd server module so that the
// local control plane needs nothing but Go modules.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
