// probe: the real node's smoke-test image (hack/node/build.sh packs it as mlops-probe):
//
//	probe serve ADDR            answer every HTTP request with this Pod's host name
//	probe resolve NAME...       print each name's addresses (the Pod's resolv.conf)
//	probe get URL               print the body of a GET
//	probe write FILE TEXT       write TEXT to FILE, print the uid that wrote it
//	probe sleep                 wait for SIGTERM
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: probe serve|resolve|get|write|sleep ..."))
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		name, _ := os.Hostname()
		fmt.Println("serving on", args[0])
		fail(http.ListenAndServe(args[0], http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, name)
		})))
	case "resolve":
		for _, name := range args {
			addrs, err := net.LookupHost(name)
			if err != nil {
				fail(err)
			}
			fmt.Println(name, addrs)
		}
	case "get":
		client := http.Client{Timeout: 10 * time.Second}
		resp, err := client.Get(args[0])
		if err != nil {
			fail(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s", resp.StatusCode, body)
	case "write":
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			fail(err)
		}
		fmt.Println("written by uid", os.Getuid())
	case "sleep":
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "probe:", err)
	os.Exit(1)
}
