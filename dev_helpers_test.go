package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// httpreq [-H 'NAME: VALUE']... METHOD URL [BODY]: send one unsigned
// request, as a web page or curl could, and print the status code then the
// body. Only the headers named are set: no signature, no SDK.
func cmdHTTPReq(ts *testscript.TestScript, neg bool, args []string) {
	header := http.Header{}
	for len(args) >= 2 && args[0] == "-H" {
		k, v, ok := strings.Cut(args[1], ":")
		if !ok {
			ts.Fatalf("httpreq: -H %q: want 'NAME: VALUE'", args[1])
		}
		header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		args = args[2:]
	}
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: httpreq [-H 'NAME: VALUE']... METHOD URL [BODY]")
	}
	var body io.Reader
	if len(args) == 3 {
		body = strings.NewReader(args[2])
	}
	req, err := http.NewRequest(args[0], args[1], body)
	ts.Check(err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%d\n%s", resp.StatusCode, out)
}
