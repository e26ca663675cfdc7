package devserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Credentials are the access key pair every request must be signed with.
type Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// maxClockSkew is how far a request's X-Amz-Date may be from the endpoint's
// clock, as on AWS.
const maxClockSkew = 15 * time.Minute

// sigV4 is the parsed Authorization header of a SigV4-signed request.
type sigV4 struct {
	keyID, date, region, service string
	signedHeaders                []string
	signature                    string
}

func parseAuthorization(h string) (sigV4, error) {
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(h, algo) {
		return sigV4{}, fmt.Errorf("not a SigV4 (AWS4-HMAC-SHA256) signature")
	}
	var a sigV4
	for _, part := range strings.Split(h[len(algo):], ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return sigV4{}, fmt.Errorf("malformed Credential")
			}
			a.keyID, a.date, a.region, a.service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			a.signedHeaders = strings.Split(v, ";")
		case "Signature":
			a.signature = v
		}
	}
	if a.keyID == "" || a.signature == "" || len(a.signedHeaders) == 0 {
		return sigV4{}, fmt.Errorf("incomplete Authorization header")
	}
	return a, nil
}

// authError is why a request was refused.
type authError struct {
	code, msg string
}

func (e *authError) Error() string { return e.code + ": " + e.msg }

// verify checks r's SigV4 signature for service by signing a copy of the
// request (the signed headers only) with the SDK's own signer and comparing
// the two signatures. payloadHash is the hash the client signed: the
// x-amz-content-sha256 header for S3, the body's SHA-256 for SQS.
// signers recompute request signatures, one for S3 (which signs the path
// as sent) and one for SQS (which escapes it once more). Each endpoint has
// its own: their cache of derived signing keys, four HMACs a request
// otherwise, is keyed by access key id alone.
type signers struct{ s3, sqs *v4.Signer }

func newSigners() signers {
	return signers{
		s3:  v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
		sqs: v4.NewSigner(),
	}
}

func (sg signers) verify(r *http.Request, creds Credentials, service, payloadHash string, now time.Time) error {
	a, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		if r.Header.Get("Authorization") == "" {
			if r.URL.Query().Has("X-Amz-Signature") {
				return &authError{"AccessDenied", "presigned URLs are not accepted by the local endpoint"}
			}
			return &authError{"MissingAuthenticationToken", "the request is not signed"}
		}
		return &authError{"IncompleteSignature", err.Error()}
	}
	if a.keyID != creds.AccessKeyID {
		return &authError{"InvalidClientTokenId", "the access key id is not the one of this endpoint (see its env file)"}
	}
	if a.service != service {
		return &authError{"IncompleteSignature", "the credential scope names service " + a.service + ", not " + service}
	}
	ts, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return &authError{"IncompleteSignature", "missing or malformed X-Amz-Date"}
	}
	if d := now.Sub(ts); d > maxClockSkew || d < -maxClockSkew {
		return &authError{"RequestTimeTooSkewed", "the request time is too far from the endpoint's clock"}
	}
	if ts.Format("20060102") != a.date {
		return &authError{"SignatureDoesNotMatch", "the credential scope date is not the request's date"}
	}

	u := *r.URL
	if raw, _, _ := strings.Cut(r.RequestURI, "?"); strings.HasPrefix(raw, "/") {
		if p, err := url.PathUnescape(raw); err == nil {
			u.Path, u.RawPath = p, raw
		}
	}
	u.Scheme, u.Host = "http", r.Host
	cp, err := http.NewRequestWithContext(context.Background(), r.Method, u.String(), nil)
	if err != nil {
		return &authError{"SignatureDoesNotMatch", err.Error()}
	}
	cp.URL = &u
	cp.Host = r.Host
	for _, h := range a.signedHeaders {
		switch h {
		case "host":
		case "content-length":
			cp.ContentLength = r.ContentLength
		case "x-amz-date":
		default:
			for _, v := range r.Header.Values(h) {
				cp.Header.Add(h, v)
			}
		}
	}
	signer := sg.sqs
	if service == "s3" {
		signer = sg.s3
	}
	if err := signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey},
		cp, payloadHash, service, a.region, ts); err != nil {
		return &authError{"SignatureDoesNotMatch", err.Error()}
	}
	want, err := parseAuthorization(cp.Header.Get("Authorization"))
	if err != nil {
		return &authError{"SignatureDoesNotMatch", err.Error()}
	}
	if !hmac.Equal([]byte(want.signature), []byte(a.signature)) {
		return &authError{"SignatureDoesNotMatch", "the request signature we calculated does not match the signature you provided; check the secret key in the env file"}
	}
	return nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
