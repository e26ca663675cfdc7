package commands

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// configKeys, which the help and the unknown-key message list, are the
// config file's keys.
func TestConfigKeysAreTheFileKeys(t *testing.T) {
	var tags []string
	ft := reflect.TypeFor[fileConfig]()
	for i := range ft.NumField() {
		tags = append(tags, ft.Field(i).Tag.Get("yaml"))
	}
	if !slices.Equal(tags, configKeys) {
		t.Fatalf("configKeys = %v, fileConfig keys = %v", configKeys, tags)
	}
}

// A config file's mistakes are said in YAML's words: the key, or the kind
// of value expected and found, never the Go types they are read into.
func TestYAMLMessage(t *testing.T) {
	for in, want := range map[string]string{
		"bucket_name: x\n":      `line 1: unknown key "bucket_name" (the keys are queue_url, dead_letter_queue_url, queues, bucket, prefix, region, profile, endpoint_url, signing_key, verify_keys, allow, pass_env, max_task_age)`,
		"queues: 3\n":           "line 1: expected a mapping of names to strings, not a number (3)",
		"bucket: [a]\n":         "line 1: expected a string, not a list",
		"region: x\nallow: y\n": "line 2: expected a list of strings, not a string (y)",
	} {
		var fc fileConfig
		dec := yaml.NewDecoder(strings.NewReader(in))
		dec.KnownFields(true)
		err := dec.Decode(&fc)
		if err == nil {
			t.Fatalf("%q decoded", in)
		}
		if got := yamlMessage(err); got != want {
			t.Errorf("%q: %s\nwant %s", in, got, want)
		}
	}
}
