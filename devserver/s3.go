package devserver

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The S3 side: path-style buckets and objects with what the SDKs and the AWS
// CLI use of them: list, create, head and delete buckets; put (with
// If-None-Match), copy, get (with ranges and conditions through
// http.ServeContent), head, delete and batch delete objects; ListObjects v1
// and v2 with prefix, delimiter and paging.
//
// An object's body is a file of its own, written as it arrives (through a
// temporary file and a rename) and served from the file, so that no body is
// ever held in memory. The index (key to file, size, ETag, metadata) is a
// bolt bucket per S3 bucket, sorted by key, so a LIST seeks to its prefix and
// reads only what it returns.

const s3XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"

// unsupportedBucketConfig lists the bucket subresources not implemented here.
// They get S3's NotImplemented, which `taskiq-go init` reports as a step the
// endpoint skipped, rather than a misread as a listing or a create.
var unsupportedBucketConfig = []string{"lifecycle", "policy", "tagging", "encryption", "notification", "replication",
	"website", "acl", "cors", "logging", "ownershipControls", "publicAccessBlock", "versioning", "versions",
	"uploads", "uploadId", "object-lock", "accelerate", "analytics", "inventory", "metrics", "intelligent-tiering",
	"requestPayment", "retention", "legal-hold", "torrent", "attributes", "restore", "select"}

// objectMeta is the index entry of one object: its body is Data when it is
// small (most of what taskiq-go writes: task records, markers, group and
// index entries), else the file Blob in the object directory.
type objectMeta struct {
	Blob     string            `json:"blob"`
	Data     []byte            `json:"data,omitempty"`
	Size     int64             `json:"size"`
	ETag     string            `json:"etag"` // with quotes
	Modified int64             `json:"modified"`
	Headers  map[string]string `json:"headers,omitempty"` // Content-Type, x-amz-meta-*, ...
}

// listedMeta is the part of an objectMeta a listing reports.
type listedMeta struct {
	Size     int64  `json:"size"`
	ETag     string `json:"etag"`
	Modified int64  `json:"modified"`
}

// inlineMax is the largest body kept in the index entry itself: a PUT of
// one costs a bolt transaction and no file (create, write, rename), a GET
// no open.
const inlineMax = 4 << 10

// storedHeaders are the request headers kept with an object and sent back.
var storedHeaders = []string{"Content-Type", "Content-Encoding", "Content-Disposition", "Content-Language", "Cache-Control", "Expires"}

type s3Service struct {
	db        *bolt.DB
	blobDir   string
	region    string // the bucket's, in x-amz-bucket-region
	now       func() time.Time
	listReads atomic.Int64 // index entries LISTs have read, for tests
}

func newS3Service(sd *stateDir, region string, now func() time.Time) *s3Service {
	return &s3Service{db: sd.db, blobDir: filepath.Join(sd.path, blobDir), region: region, now: now}
}

// s3Error is an S3 error answer.
type s3Error struct {
	Status  int
	Code    string
	Message string
}

func (e *s3Error) Error() string { return e.Code + ": " + e.Message }

func errNoSuchBucket() *s3Error {
	return &s3Error{404, "NoSuchBucket", "The specified bucket does not exist"}
}
func errNoSuchKey() *s3Error { return &s3Error{404, "NoSuchKey", "The specified key does not exist."} }
func errS3Invalid(msg string) *s3Error {
	return &s3Error{400, "InvalidArgument", msg}
}
func errS3Internal(err error) *s3Error { return &s3Error{500, "InternalError", err.Error()} }

func writeS3Error(w http.ResponseWriter, r *http.Request, e *s3Error) {
	w.Header().Set("x-amz-request-id", newID())
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	body, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		Resource  string
		RequestId string
	}{Code: e.Code, Message: e.Message, Resource: r.URL.Path, RequestId: newID()})
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status)
	_, _ = w.Write(append([]byte(xml.Header), body...))
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", newID())
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), body...))
}

// ServeHTTP answers one S3 request (already authenticated); body is the
// request body with any aws-chunked framing removed and its signed payload
// hash checked as it is read.
func (s *s3Service) ServeHTTP(w http.ResponseWriter, r *http.Request, body io.Reader) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	for _, sub := range unsupportedBucketConfig {
		if q.Has(sub) {
			writeS3Error(w, r, &s3Error{501, "NotImplemented", "The local endpoint does not implement the " + sub + " subresource."})
			return
		}
	}
	var e *s3Error
	switch {
	case bucket == "" && r.Method == http.MethodGet:
		e = s.listBuckets(w)
	case bucket == "":
		e = &s3Error{405, "MethodNotAllowed", "The specified method is not allowed against this resource."}
	case key == "":
		e = s.bucketOp(w, r, bucket, body)
	default:
		e = s.objectOp(w, r, bucket, key, body)
	}
	if e != nil {
		writeS3Error(w, r, e)
	}
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func (s *s3Service) bucketExists(tx *bolt.Tx, bucket string) bool {
	return tx.Bucket(bBuckets).Get([]byte(bucket)) != nil
}

// CreateBucket makes bucket if needed (used at start).
func (s *s3Service) createBucket(bucket string) (created bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if s.bucketExists(tx, bucket) {
			return nil
		}
		created = true
		if _, err := tx.CreateBucketIfNotExists(objBucket(bucket)); err != nil {
			return err
		}
		return tx.Bucket(bBuckets).Put([]byte(bucket), []byte(strconv.FormatInt(s.now().Unix(), 10)))
	})
	return created, err
}

func (s *s3Service) listBuckets(w http.ResponseWriter) *s3Error {
	type bucket struct {
		Name         string
		CreationDate string
	}
	var out struct {
		XMLName xml.Name `xml:"ListAllMyBucketsResult"`
		XMLNS   string   `xml:"xmlns,attr"`
		Owner   struct{ ID, DisplayName string }
		Buckets []bucket `xml:"Buckets>Bucket"`
	}
	out.XMLNS = s3XMLNS
	out.Owner.ID, out.Owner.DisplayName = "taskiq-dev", "taskiq-dev"
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bBuckets).ForEach(func(k, v []byte) error {
			sec, _ := strconv.ParseInt(string(v), 10, 64)
			out.Buckets = append(out.Buckets, bucket{string(k), time.Unix(sec, 0).UTC().Format(time.RFC3339)})
			return nil
		})
	})
	if err != nil {
		return errS3Internal(err)
	}
	writeXML(w, 200, out)
	return nil
}

func (s *s3Service) bucketOp(w http.ResponseWriter, r *http.Request, bucket string, body io.Reader) *s3Error {
	q := r.URL.Query()
	switch r.Method {
	case http.MethodPut:
		if !bucketName.MatchString(bucket) {
			return &s3Error{400, "InvalidBucketName", "The specified bucket is not valid."}
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
		created, err := s.createBucket(bucket)
		if err != nil {
			return errS3Internal(err)
		}
		if !created {
			return &s3Error{409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it."}
		}
		w.Header().Set("Location", "/"+bucket)
		w.WriteHeader(200)
		return nil
	case http.MethodHead:
		if !s.hasBucket(bucket) {
			return errNoSuchBucket()
		}
		w.Header().Set("x-amz-bucket-region", s.region)
		w.WriteHeader(200)
		return nil
	case http.MethodDelete:
		return s.deleteBucket(w, bucket)
	case http.MethodPost:
		if q.Has("delete") {
			return s.deleteObjects(w, bucket, body)
		}
	case http.MethodGet:
		if !s.hasBucket(bucket) {
			return errNoSuchBucket()
		}
		if q.Has("location") {
			writeXML(w, 200, struct {
				XMLName xml.Name `xml:"LocationConstraint"`
				XMLNS   string   `xml:"xmlns,attr"`
			}{XMLNS: s3XMLNS})
			return nil
		}
		return s.list(w, bucket, q)
	}
	return &s3Error{405, "MethodNotAllowed", "The specified method is not allowed against this resource."}
}

func (s *s3Service) hasBucket(bucket string) bool {
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error { found = s.bucketExists(tx, bucket); return nil })
	return found
}

func (s *s3Service) deleteBucket(w http.ResponseWriter, bucket string) *s3Error {
	var e *s3Error
	err := s.db.Update(func(tx *bolt.Tx) error {
		if !s.bucketExists(tx, bucket) {
			e = errNoSuchBucket()
			return nil
		}
		if k, _ := tx.Bucket(objBucket(bucket)).Cursor().First(); k != nil {
			e = &s3Error{409, "BucketNotEmpty", "The bucket you tried to delete is not empty"}
			return nil
		}
		if err := tx.DeleteBucket(objBucket(bucket)); err != nil {
			return err
		}
		return tx.Bucket(bBuckets).Delete([]byte(bucket))
	})
	if err != nil {
		return errS3Internal(err)
	}
	if e != nil {
		return e
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// successor is the least string greater than every string that has p as a
// prefix, or "" if there is none.
func successor(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

type listEntry struct {
	Key          string
	LastModified string
	ETag         string
	Size         int64
	StorageClass string
}

type commonPrefix struct{ Prefix string }

// list answers ListObjects (v1) and ListObjectsV2.
func (s *s3Service) list(w http.ResponseWriter, bucket string, q url.Values) *s3Error {
	v2 := q.Get("list-type") == "2"
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	maxKeys := 1000
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errS3Invalid("max-keys must be a non-negative integer")
		}
		maxKeys = min(n, 1000)
	}
	// after is the point the listing resumes from: everything <= after has
	// been returned.
	start := prefix
	var after string
	if v2 {
		after = q.Get("start-after")
		if tok := q.Get("continuation-token"); tok != "" {
			raw, err := base64.RawURLEncoding.DecodeString(tok)
			if err != nil {
				return errS3Invalid("The continuation token provided is incorrect")
			}
			after = string(raw)
		}
	} else {
		after = q.Get("marker")
	}
	if after != "" && after >= start {
		start = after + "\x00"
		if delim != "" && strings.HasSuffix(after, delim) && strings.HasPrefix(after, prefix) &&
			strings.Contains(after[len(prefix):], delim) {
			// after is a common prefix: skip all of it.
			if succ := successor(after); succ != "" {
				start = succ
			}
		}
	}
	urlEnc := q.Get("encoding-type") == "url"
	enc := func(s string) string {
		if urlEnc {
			return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
		}
		return s
	}

	var contents []listEntry
	var prefixes []commonPrefix
	truncated := false
	last := ""
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(objBucket(bucket))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek([]byte(start)); k != nil && bytes.HasPrefix(k, []byte(prefix)); {
			s.listReads.Add(1)
			key := string(k)
			if len(contents)+len(prefixes) == maxKeys {
				truncated = true
				break
			}
			if delim != "" {
				if i := strings.Index(key[len(prefix):], delim); i >= 0 {
					cp := key[:len(prefix)+i+len(delim)]
					prefixes = append(prefixes, commonPrefix{enc(cp)})
					last = cp
					succ := successor(cp)
					if succ == "" {
						break
					}
					k, v = c.Seek([]byte(succ))
					continue
				}
			}
			var m listedMeta // not the body a small object carries
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			contents = append(contents, listEntry{Key: enc(key), LastModified: time.Unix(0, m.Modified).UTC().Format("2006-01-02T15:04:05.000Z"),
				ETag: m.ETag, Size: m.Size, StorageClass: "STANDARD"})
			last = key
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return errS3Internal(err)
	}
	type result struct {
		XMLName               xml.Name       `xml:"ListBucketResult"`
		XMLNS                 string         `xml:"xmlns,attr"`
		Name                  string         `xml:"Name"`
		Prefix                string         `xml:"Prefix"`
		Delimiter             string         `xml:"Delimiter,omitempty"`
		Marker                *string        `xml:"Marker,omitempty"`
		NextMarker            string         `xml:"NextMarker,omitempty"`
		StartAfter            string         `xml:"StartAfter,omitempty"`
		ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
		NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
		KeyCount              *int           `xml:"KeyCount,omitempty"`
		MaxKeys               int            `xml:"MaxKeys"`
		EncodingType          string         `xml:"EncodingType,omitempty"`
		IsTruncated           bool           `xml:"IsTruncated"`
		Contents              []listEntry    `xml:"Contents"`
		CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
	}
	out := result{XMLNS: s3XMLNS, Name: bucket, Prefix: enc(prefix), Delimiter: enc(delim), MaxKeys: maxKeys,
		IsTruncated: truncated, Contents: contents, CommonPrefixes: prefixes}
	if urlEnc {
		out.EncodingType = "url"
	}
	if v2 {
		n := len(contents) + len(prefixes)
		out.KeyCount = &n
		out.StartAfter = enc(q.Get("start-after"))
		out.ContinuationToken = q.Get("continuation-token")
		if truncated {
			out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(last))
		}
	} else {
		m := q.Get("marker")
		out.Marker = &m
		if truncated {
			out.NextMarker = enc(last)
		}
	}
	writeXML(w, 200, out)
	return nil
}

func (s *s3Service) deleteObjects(w http.ResponseWriter, bucket string, body io.Reader) *s3Error {
	var req struct {
		Quiet   bool
		Objects []struct{ Key string } `xml:"Object"`
	}
	data, err := io.ReadAll(io.LimitReader(body, 4<<20))
	if err != nil {
		return errS3Invalid(err.Error())
	}
	if err := xml.Unmarshal(data, &req); err != nil {
		return &s3Error{400, "MalformedXML", "The XML you provided was not well-formed"}
	}
	if len(req.Objects) > 1000 {
		return &s3Error{400, "MalformedXML", "At most 1000 keys per request"}
	}
	type deleted struct{ Key string }
	var out struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		XMLNS   string    `xml:"xmlns,attr"`
		Deleted []deleted `xml:"Deleted"`
	}
	out.XMLNS = s3XMLNS
	var blobs []string
	var e *s3Error
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(objBucket(bucket))
		if b == nil {
			e = errNoSuchBucket()
			return nil
		}
		for _, o := range req.Objects {
			if v := b.Get([]byte(o.Key)); v != nil {
				var m objectMeta
				if json.Unmarshal(v, &m) == nil {
					blobs = append(blobs, m.Blob)
				}
				if err := b.Delete([]byte(o.Key)); err != nil {
					return err
				}
			}
			if !req.Quiet {
				out.Deleted = append(out.Deleted, deleted{o.Key})
			}
		}
		return nil
	})
	if err != nil {
		return errS3Internal(err)
	}
	if e != nil {
		return e
	}
	s.removeBlobs(blobs)
	writeXML(w, 200, out)
	return nil
}

func (s *s3Service) removeBlobs(blobs []string) {
	for _, b := range blobs {
		if b != "" {
			_ = os.Remove(filepath.Join(s.blobDir, b))
		}
	}
}

func (s *s3Service) getMeta(bucket, key string) (objectMeta, *s3Error) {
	var m objectMeta
	var e *s3Error
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(objBucket(bucket))
		if b == nil {
			e = errNoSuchBucket()
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			e = errNoSuchKey()
			return nil
		}
		return json.Unmarshal(v, &m)
	})
	if err != nil {
		return m, errS3Internal(err)
	}
	return m, e
}

func (s *s3Service) objectOp(w http.ResponseWriter, r *http.Request, bucket, key string, body io.Reader) *s3Error {
	switch r.Method {
	case http.MethodPut:
		if src := r.Header.Get("X-Amz-Copy-Source"); src != "" {
			return s.copyObject(w, r, bucket, key, src)
		}
		return s.putObject(w, r, bucket, key, body)
	case http.MethodGet, http.MethodHead:
		return s.getObject(w, r, bucket, key)
	case http.MethodDelete:
		var blob string
		var e *s3Error
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(objBucket(bucket))
			if b == nil {
				e = errNoSuchBucket()
				return nil
			}
			if v := b.Get([]byte(key)); v != nil {
				var m objectMeta
				if json.Unmarshal(v, &m) == nil {
					blob = m.Blob
				}
			}
			return b.Delete([]byte(key))
		})
		if err != nil {
			return errS3Internal(err)
		}
		if e != nil {
			return e
		}
		s.removeBlobs([]string{blob})
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return &s3Error{405, "MethodNotAllowed", "The specified method is not allowed against this resource."}
}

func newBlobName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// putObject streams the body into a new file and then points the key at it.
func (s *s3Service) putObject(w http.ResponseWriter, r *http.Request, bucket, key string, body io.Reader) *s3Error {
	if len(key) > 1024 {
		return &s3Error{400, "KeyTooLongError", "Your key is too long"}
	}
	if !s.hasBucket(bucket) {
		return errNoSuchBucket()
	}
	ifNoneMatch := r.Header.Get("If-None-Match")
	if ifNoneMatch != "" && ifNoneMatch != "*" {
		return &s3Error{501, "NotImplemented", "If-None-Match is only supported with *"}
	}
	if ifNoneMatch == "*" {
		if _, e := s.getMeta(bucket, key); e == nil {
			return &s3Error{412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"}
		}
	}
	// A body that fits inlineMax stays in memory and in the index; a
	// larger one goes to a file, through a temporary name.
	h := md5.New()
	head, err := readUpTo(body, inlineMax+1)
	if err != nil {
		return bodyError(err)
	}
	k := len(head)
	h.Write(head)
	var blob, path string
	n := int64(k)
	if k > inlineMax {
		blob = newBlobName()
		path = filepath.Join(s.blobDir, blob)
		f, err := os.OpenFile(path+".part", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return errS3Internal(err)
		}
		_, err = f.Write(head)
		if err == nil {
			var rest int64
			rest, err = io.Copy(io.MultiWriter(f, h), body)
			n += rest
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path + ".part")
			return bodyError(err)
		}
	}
	if want := r.Header.Get("Content-Md5"); want != "" {
		if base64.StdEncoding.EncodeToString(h.Sum(nil)) != want {
			if blob != "" {
				_ = os.Remove(path + ".part")
			}
			return &s3Error{400, "BadDigest", "The Content-MD5 you specified did not match what we received."}
		}
	}
	if blob != "" {
		if err := os.Rename(path+".part", path); err != nil {
			_ = os.Remove(path + ".part")
			return errS3Internal(err)
		}
	}
	m := objectMeta{Blob: blob, Size: n, ETag: `"` + hex.EncodeToString(h.Sum(nil)) + `"`, Modified: s.now().UnixNano(),
		Headers: keptHeaders(r.Header)}
	if blob == "" {
		m.Data = head
	}
	if e := s.commitObject(bucket, key, m, ifNoneMatch == "*"); e != nil {
		if blob != "" {
			_ = os.Remove(path)
		}
		return e
	}
	w.Header().Set("ETag", m.ETag)
	w.WriteHeader(200)
	return nil
}

// readUpTo reads r until it ends or limit bytes are read; the end of r is
// no error, any other error of r is.
func readUpTo(r io.Reader, limit int) ([]byte, error) {
	buf := make([]byte, limit)
	n := 0
	for n < limit {
		k, err := r.Read(buf[n:])
		n += k
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return buf[:n], nil
}

// bodyError is the answer to a PUT whose body could not be read or stored.
func bodyError(err error) *s3Error {
	var se *s3Error
	if errors.As(err, &se) {
		return se
	}
	return &s3Error{400, "IncompleteBody", "cannot read the request body: " + err.Error()}
}

func keptHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for _, k := range storedHeaders {
		if v := h.Get(k); v != "" {
			out[k] = v
		}
	}
	// aws-chunked is the upload's framing, not the object's encoding.
	if ce := out["Content-Encoding"]; ce != "" {
		var keep []string
		for _, p := range strings.Split(ce, ",") {
			if p = strings.TrimSpace(p); p != "" && p != "aws-chunked" {
				keep = append(keep, p)
			}
		}
		if len(keep) == 0 {
			delete(out, "Content-Encoding")
		} else {
			out["Content-Encoding"] = strings.Join(keep, ",")
		}
	}
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") && len(v) > 0 {
			out[http.CanonicalHeaderKey(k)] = v[0]
		}
	}
	return out
}

// commitObject points key at m, removing the file it replaces.
func (s *s3Service) commitObject(bucket, key string, m objectMeta, ifAbsent bool) *s3Error {
	data, err := json.Marshal(m)
	if err != nil {
		return errS3Internal(err)
	}
	var old string
	var e *s3Error
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(objBucket(bucket))
		if b == nil {
			e = errNoSuchBucket()
			return nil
		}
		if v := b.Get([]byte(key)); v != nil {
			if ifAbsent {
				e = &s3Error{412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"}
				return nil
			}
			var prev objectMeta
			if json.Unmarshal(v, &prev) == nil {
				old = prev.Blob
			}
		}
		return b.Put([]byte(key), data)
	})
	if err != nil {
		return errS3Internal(err)
	}
	if e != nil {
		return e
	}
	s.removeBlobs([]string{old})
	return nil
}

func (s *s3Service) copyObject(w http.ResponseWriter, r *http.Request, bucket, key, src string) *s3Error {
	src, _ = url.PathUnescape(src)
	src, _, _ = strings.Cut(src, "?")
	sb, sk, _ := strings.Cut(strings.TrimPrefix(src, "/"), "/")
	m, e := s.getMeta(sb, sk)
	if e != nil {
		return e
	}
	var blob, path string
	if m.Blob != "" {
		in, err := os.Open(filepath.Join(s.blobDir, m.Blob))
		if err != nil {
			return errS3Internal(err)
		}
		defer in.Close()
		blob = newBlobName()
		path = filepath.Join(s.blobDir, blob)
		out, err := os.OpenFile(path+".part", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return errS3Internal(err)
		}
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(path+".part", path)
		}
		if err != nil {
			_ = os.Remove(path + ".part")
			return errS3Internal(err)
		}
	}
	nm := objectMeta{Blob: blob, Data: m.Data, Size: m.Size, ETag: m.ETag, Modified: s.now().UnixNano(), Headers: m.Headers}
	if r.Header.Get("X-Amz-Metadata-Directive") == "REPLACE" {
		nm.Headers = keptHeaders(r.Header)
	}
	if e := s.commitObject(bucket, key, nm, false); e != nil {
		if blob != "" {
			_ = os.Remove(path)
		}
		return e
	}
	lm := time.Unix(0, nm.Modified).UTC().Format("2006-01-02T15:04:05.000Z")
	writeXML(w, 200, struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		XMLNS        string   `xml:"xmlns,attr"`
		LastModified string
		ETag         string
	}{XMLNS: s3XMLNS, LastModified: lm, ETag: nm.ETag})
	return nil
}

// getObject serves the object's file; http.ServeContent does ranges and the
// If-* conditions against the ETag and modification time.
func (s *s3Service) getObject(w http.ResponseWriter, r *http.Request, bucket, key string) *s3Error {
	m, e := s.getMeta(bucket, key)
	if e != nil {
		return e
	}
	var content io.ReadSeeker = bytes.NewReader(m.Data)
	if m.Blob != "" {
		f, err := os.Open(filepath.Join(s.blobDir, m.Blob))
		if err != nil {
			// Replaced or deleted between the index read and the open.
			if errors.Is(err, os.ErrNotExist) {
				return errNoSuchKey()
			}
			return errS3Internal(err)
		}
		defer f.Close()
		content = f
	}
	h := w.Header()
	h.Set("Content-Type", "binary/octet-stream")
	for k, v := range m.Headers {
		h.Set(k, v)
	}
	h.Set("ETag", m.ETag)
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-amz-request-id", newID())
	http.ServeContent(w, r, "", time.Unix(0, m.Modified), content)
	return nil
}

// hashingReader checks, at EOF, that what was read hashes to want (the
// signed x-amz-content-sha256); a mismatch fails the read, so that a PUT
// does not store a body other than the one that was signed.
type hashingReader struct {
	r    io.Reader
	h    hash.Hash
	want string
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	if errors.Is(err, io.EOF) && hex.EncodeToString(hr.h.Sum(nil)) != hr.want {
		return n, &s3Error{400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}
	return n, err
}

var errChunk = fmt.Errorf("malformed aws-chunked body")
