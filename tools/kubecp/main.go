// Command kubecp is a multi-call binary holding a small Kubernetes control plane
// for end-to-end tests: etcd, kube-apiserver, kube-controller-manager and kubectl,
// all built from the Go module proxy (see README.md).
//
// The component is chosen by the first argument (`kubecp etcd --data-dir=...`) or,
// when the binary is invoked through a symlink, by the link's name
// (`ln -s kubecp kube-apiserver; ./kube-apiserver --etcd-servers=...`).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// components maps a component name to its entry point. Each entry point sees
// os.Args as if it were its own binary: os.Args[0] is the component name.
var components = map[string]func() int{
	"etcd":                    runEtcd,
	"kube-apiserver":          runAPIServer,
	"kube-controller-manager": runControllerManager,
	"kubectl":                 runKubectl,
}

func names() []string {
	out := make([]string, 0, len(components))
	for name := range components {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: kubecp <%s> [flags...]\n", strings.Join(names(), "|"))
	fmt.Fprintln(os.Stderr, "       (or invoke through a symlink named after the component)")
}

func main() {
	base := strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
	if run, ok := components[base]; ok {
		os.Args[0] = base
		os.Exit(run())
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "-h", "--help", "help":
		usage()
		os.Exit(0)
	case "components":
		fmt.Println(strings.Join(names(), "\n"))
		os.Exit(0)
	}
	run, ok := components[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "kubecp: unknown component %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	// Shift so that the component's own flag parsing (cobra reads os.Args[1:])
	// sees exactly the arguments meant for it.
	os.Args = os.Args[1:]
	os.Exit(run())
}
