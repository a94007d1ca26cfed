package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// TestEveryCheckFieldInFiles: a field added to definition.Check is read from JSON and
// HCL files in its snake_case spelling with no change here: the reader finds fields
// by reflection (ServiceID excepted: a file's checks are its services').
func TestEveryCheckFieldInFiles(t *testing.T) {
	ct := reflect.TypeFor[definition.Check]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		if _, refused := rejected[ct][f.Name]; refused {
			continue
		}
		var jsonVal, hclVal string
		var want any
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			jsonVal, hclVal, want = `"7s"`, `"7s"`, 7*time.Second
		case f.Type == reflect.TypeFor[catalog.Status]():
			jsonVal, hclVal, want = `"warning"`, `"warning"`, catalog.StatusWarning
		case f.Type.Kind() == reflect.String:
			jsonVal, hclVal, want = `"x"`, `"x"`, "x"
		case f.Type.Kind() == reflect.Bool:
			jsonVal, hclVal, want = `true`, `true`, true
		case f.Type.Kind() == reflect.Int:
			jsonVal, hclVal, want = `3`, `3`, 3
		case f.Type.Kind() == reflect.Slice:
			jsonVal, hclVal, want = `["a"]`, `["a"]`, []string{"a"}
		case f.Type.Kind() == reflect.Map:
			jsonVal, hclVal, want = `{"K": ["v"]}`, `{ K = ["v"] }`, map[string][]string{"K": {"v"}}
		default:
			t.Fatalf("%s: no sample for %s", f.Name, f.Type)
		}
		key := displayName(ct, f)
		for name, content := range map[string]string{
			"f.json": `{"service": {"name": "w", "check": {"` + key + `": ` + jsonVal + `}}}`,
			"f.hcl":  "service {\n  name = \"w\"\n  check {\n    " + key + " = " + hclVal + "\n  }\n}\n",
		} {
			pf, errs := parseContent(name, []byte(content), name == "f.hcl")
			if len(errs) > 0 || pf.fc.Service == nil || pf.fc.Service.Check == nil {
				t.Errorf("%s as %q in %s: %v", f.Name, key, name, errs)
				continue
			}
			if got := reflect.ValueOf(*pf.fc.Service.Check).Field(i).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s as %q in %s decoded to %v, want %v", f.Name, key, name, got, want)
			}
		}
	}
}
