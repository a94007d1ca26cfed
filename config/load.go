package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/hashicorp/hcl"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Defaults of the HTTP address parts, as in Consul: client_addr and ports.http.
const (
	DefaultClientAddr = "127.0.0.1"
	DefaultHTTPPort   = 8500
)

// Options tunes Load.
type Options struct {
	// EnableScriptChecks, when not nil, overrides the files' enable_script_checks
	// when services' script checks are validated (a command-line flag wins over
	// files). Nil: the files decide; default off.
	EnableScriptChecks *bool
	// EnableLocalScriptChecks does the same for enable_local_script_checks. The
	// files' script checks are allowed when either is on.
	EnableLocalScriptChecks *bool
}

// Config is what a set of config files says.
type Config struct {
	// Settings are the agent keys the files gave.
	Settings Settings
	// Services are the service definitions of every file, validated, in file order,
	// as written (the agent normalizes them).
	Services []agent.ConfigService
	// Files lists the files read, in the order they were read.
	Files []string
}

// Load reads config files and directories (each path may be either; a directory
// contributes its *.json and *.hcl files in lexical order, skipping others and
// subdirectories), checks them and merges them in the order given. It reports every
// problem it finds as Errors, each naming file, field and reason; the Config is
// then nil. Load does no I/O beyond reading the files.
func Load(paths []string, opts Options) (*Config, error) {
	var errs Errors
	files, err := expand(paths)
	errs = append(errs, err...)
	var parsed []*parsedFile
	for _, f := range files {
		pf, ferrs := parseFile(f)
		errs = append(errs, ferrs...)
		if pf != nil {
			parsed = append(parsed, pf)
		}
	}
	c := &Config{Files: files}
	var http httpParts
	var dns dnsParts
	var dnsSet DNSSettings
	for _, pf := range parsed {
		errs = append(errs, pf.keep(pf.settings(&c.Settings, &http))...)
		errs = append(errs, pf.keep(pf.dnsSettings(&dnsSet, &dns))...)
	}
	c.Settings.HTTPAddr = http.addr()
	dnsSet.Addr = dns.addrWith(http.clientAddr)
	if !reflect.DeepEqual(dnsSet, DNSSettings{}) {
		c.Settings.DNS = &dnsSet
	}
	scripts := flagOr(opts.EnableScriptChecks, c.Settings.EnableScriptChecks) ||
		flagOr(opts.EnableLocalScriptChecks, c.Settings.EnableLocalScriptChecks)
	services, serrs := collectServices(parsed, scripts)
	c.Services = services
	errs = append(errs, serrs...)
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// flagOr is a setting: the flag's value if given, else the files', else off.
func flagOr(flag, files *bool) bool {
	switch {
	case flag != nil:
		return *flag
	case files != nil:
		return *files
	}
	return false
}

// collectServices converts and validates the services of parsed files, in order,
// and checks that service and check IDs are unique across them.
func collectServices(parsed []*parsedFile, scripts bool) ([]agent.ConfigService, Errors) {
	var out []agent.ConfigService
	var errs Errors
	seen := map[string]string{}      // service ID → where it was first defined
	checkSeen := map[string]string{} // check ID → where
	for _, pf := range parsed {
		for _, sd := range pf.services() {
			norm, serrs := sd.validate(pf.path, scripts)
			errs = append(errs, pf.keep(serrs)...)
			if len(serrs) > 0 {
				continue // reported, or caused by a decode error reported already
			}
			id := norm.ID
			where := pf.path + " (" + sd.disp + ")"
			if prev, dup := seen[id]; dup {
				errs = append(errs, &Error{File: pf.path, Field: sd.disp + ".id",
					Reason: fmt.Sprintf("service ID %q is also defined in %s; service IDs are unique per node", id, prev)})
				continue
			}
			seen[id] = where
			for i, ch := range norm.Checks {
				cid := ch.ID
				if prev, dup := checkSeen[cid]; dup {
					errs = append(errs, &Error{File: pf.path, Field: sd.checkPaths[i] + ".id",
						Reason: fmt.Sprintf("check ID %q is also used in %s; check IDs are unique per node", cid, prev)})
				}
				checkSeen[cid] = pf.path + " (" + sd.checkPaths[i] + ")"
			}
			out = append(out, agent.ConfigService{Service: *sd.def, File: pf.path})
		}
	}
	return out, errs
}

// ServiceFile parses one service definition file for `rumor register -f`: content b,
// JSON or (hclSyntax) HCL, in the schema of a config dir's files but holding only
// services; an agent key is an error, since it would have no effect there. Errors
// name the file (name), field and reason as Load's do. Script checks are let through
// (the agent that receives them decides).
func ServiceFile(name string, b []byte, hclSyntax bool) ([]agent.ConfigService, error) {
	pf, errs := parseContent(name, b, hclSyntax)
	if pf == nil {
		return nil, errs
	}
	v := reflect.ValueOf(pf.fc)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == "Service" || f.Name == "Services" || v.Field(i).IsZero() {
			continue
		}
		errs = append(errs, &Error{File: name, Field: displayName(t, f),
			Reason: "an agent setting, not part of a service definition: put it in the agent's config files"})
	}
	services, serrs := collectServices([]*parsedFile{pf}, true)
	errs = append(errs, serrs...)
	if len(errs) == 0 && len(services) == 0 {
		errs = append(errs, &Error{File: name, Reason: `no service definition: give "service" or "services"`})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return services, nil
}

// configExt reports whether a file in a config dir is a config file.
func configExt(name string) bool {
	return strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".hcl")
}

// expand turns files and directories into the list of files to read.
func expand(paths []string) ([]string, Errors) {
	var files []string
	var errs Errors
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Reason: fmt.Sprintf("cannot read: %v", unwrapPath(err))})
			continue
		}
		if !st.IsDir() {
			if !configExt(p) {
				errs = append(errs, &Error{File: p, Reason: "unknown format: name config files *.json or *.hcl"})
				continue
			}
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Reason: fmt.Sprintf("cannot read directory: %v", unwrapPath(err))})
			continue
		}
		for _, e := range entries { // ReadDir sorts by name
			full := filepath.Join(p, e.Name())
			if !configExt(e.Name()) {
				continue
			}
			if st, err := os.Stat(full); err != nil || st.IsDir() {
				continue // a dangling link or a directory named *.json
			}
			files = append(files, full)
		}
	}
	return files, errs
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parsedFile is one file decoded into the schema.
type parsedFile struct {
	path   string
	fc     fileConfig
	failed []string // display paths that did not decode: left at their zero value
}

// caused reports whether a problem found at field after decoding may just be a
// consequence of a field that failed to decode (left empty): the same field, one
// inside it, or one containing it.
func (pf *parsedFile) caused(field string) bool {
	for _, f := range pf.failed {
		if f == "" || field == f || under(field, f) || under(f, field) {
			return true
		}
	}
	return false
}

// under reports whether path lies inside parent ("a.b[1]" is under "a.b" and "a").
func under(path, parent string) bool {
	return strings.HasPrefix(path, parent) && len(path) > len(parent) && (path[len(parent)] == '.' || path[len(parent)] == '[')
}

// keep drops from errs those caused by fields that failed to decode.
func (pf *parsedFile) keep(errs Errors) Errors {
	if len(pf.failed) == 0 {
		return errs
	}
	return slices.DeleteFunc(errs, func(e *Error) bool { return pf.caused(e.Field) })
}

// parseFile reads and decodes one file; nil with errors when it is unusable.
func parseFile(path string) (*parsedFile, Errors) {
	b, err := readBounded(path)
	if err != nil {
		return nil, boundsError(path, err)
	}
	return parseContent(path, b, strings.HasSuffix(path, ".hcl"))
}

// parseContent decodes one file's content, JSON or (hclSyntax) HCL; path names it in
// errors. Content over MaxFileSize or nested beyond MaxDepth is refused before it
// is parsed.
func parseContent(path string, b []byte, hclSyntax bool) (*parsedFile, Errors) {
	if err := checkBounds(b, hclSyntax); err != nil {
		return nil, boundsError(path, err)
	}
	var raw map[string]any
	if hclSyntax {
		if err := hcl.Decode(&raw, string(b)); err != nil {
			return nil, Errors{{File: path, Reason: "invalid HCL: " + strings.TrimSpace(err.Error())}}
		}
	} else if err := decodeJSON(b, &raw); err != nil {
		return nil, Errors{{File: path, Reason: err.Error()}}
	}
	if raw == nil {
		raw = map[string]any{}
	}
	sh := &shaper{paths: map[string]string{}}
	shaped := sh.shape(raw, reflect.TypeFor[fileConfig](), "", "")
	var errs Errors
	for _, fe := range sh.errs {
		errs = append(errs, &Error{File: path, Field: fe.field, Reason: fe.reason})
	}
	pf := &parsedFile{path: path}
	for _, fe := range sh.errs {
		pf.failed = append(pf.failed, fe.field)
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:  decodeHook,
		ErrorUnused: true, // a backstop: the shaper has reported unknown keys already
		Result:      &pf.fc,
	})
	if err != nil {
		return nil, Errors{{File: path, Reason: err.Error()}}
	}
	if err := dec.Decode(shaped); err != nil {
		forEachDecodeError(err, func(name string, err error) {
			field, ok := sh.paths[name]
			if !ok {
				field = name
			}
			errs = append(errs, &Error{File: path, Field: field, Reason: reason(err)})
			pf.failed = append(pf.failed, field)
		})
	}
	// The fields decoded still get checked, so one run reports every problem; the
	// checks skip what failed to decode (see parsedFile.caused).
	return pf, errs
}

// decodeJSON decodes one JSON object, numbers kept as json.Number so integers stay
// exact; syntax errors name the line and column.
func decodeJSON(b []byte, out *map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			line, col := position(b, se.Offset)
			return fmt.Errorf("invalid JSON at line %d, column %d: %v", line, col, se)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			if len(bytes.TrimSpace(b)) == 0 {
				return errors.New("the file is empty: write a JSON object such as {\"service\": {\"name\": \"web\"}}")
			}
			return errors.New("invalid JSON: the file ends in the middle of a value")
		}
		return fmt.Errorf("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: unexpected data after the top-level object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("the top level is %s; want an object such as {\"service\": {...}}", describe(v))
	}
	*out = m
	return nil
}

// position turns a byte offset into a 1-based line and column.
func position(b []byte, off int64) (line, col int) {
	off = min(off, int64(len(b)))
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// forEachDecodeError walks mapstructure's errors: joined, wrapped ("decoding failed
// due to..."), and per field.
func forEachDecodeError(err error, f func(name string, err error)) {
	var de *mapstructure.DecodeError
	if errors.As(err, &de) && err == error(de) {
		f(de.Name(), de.Unwrap())
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			forEachDecodeError(e, f)
		}
		return
	}
	if inner := errors.Unwrap(err); inner != nil {
		forEachDecodeError(inner, f)
		return
	}
	f("", err)
}

// reason words a mapstructure error for a user.
func reason(err error) string {
	var ut *mapstructure.UnconvertibleTypeError
	var pe *mapstructure.ParseError
	switch {
	case errors.As(err, &ut):
		return fmt.Sprintf("want %s, got %s", kindWord(ut.Expected.Type()), describe(ut.Value))
	case errors.As(err, &pe):
		return fmt.Sprintf("%v is not %s", pe.Value, kindWord(pe.Expected.Type()))
	}
	return err.Error()
}

// kindWord names what a Go type expects, in a file's terms.
func kindWord(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration such as \"10s\""
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, not negative"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// decodeHook converts the values mapstructure cannot: durations (definition's
// ParseDuration: a unit required; unlike the HTTP API, a file takes no bare numbers
// of nanoseconds), check statuses, and refuses JSON numbers where a string is wanted
// (mapstructure would take them as strings).
func decodeHook(from, to reflect.Value) (any, error) {
	v := from.Interface()
	switch to.Type() {
	case reflect.TypeFor[time.Duration]():
		return parseDuration(v)
	case reflect.TypeFor[catalog.Status]():
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want passing, warning or critical, got %s", describe(v))
		}
		return definition.ParseInitialStatus(s)
	}
	if _, isNum := v.(json.Number); isNum && to.Kind() == reflect.String {
		return nil, fmt.Errorf("want a string, got a number (%s): quote it", v)
	}
	return v, nil
}

// parseDuration reads a file's duration: a string with a unit, not negative.
func parseDuration(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		if describe(v) == "a number" {
			return 0, fmt.Errorf("%v is not a duration (use \"%vs\")", v, v)
		}
		return 0, fmt.Errorf("want a duration such as \"10s\", got %s", describe(v))
	}
	return definition.ParseDuration(s)
}

// forEachFieldError walks joined validation errors.
func forEachFieldError(err error, f func(field, reason string)) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			forEachFieldError(e, f)
		}
		return
	}
	var fe *catalog.FieldError
	if errors.As(err, &fe) {
		f(fe.Field, fe.Reason)
		return
	}
	f("", err.Error())
}

// fileService is one service definition of a file, with where it sits.
type fileService struct {
	def        *definition.Service
	disp       string   // "service" or "services[i]"
	checkPaths []string // display path of each check, in the order given to the agent
}

// services lists the file's service definitions: "service", then "services".
func (pf *parsedFile) services() []fileService {
	var out []fileService
	if pf.fc.Service != nil {
		out = append(out, fileService{def: pf.fc.Service, disp: "service"})
	}
	for i := range pf.fc.Services {
		out = append(out, fileService{def: &pf.fc.Services[i], disp: fmt.Sprintf("services[%d]", i)})
	}
	for i := range out {
		sd := out[i].def
		if sd.Check != nil {
			out[i].checkPaths = append(out[i].checkPaths, out[i].disp+".check")
		}
		for j := range sd.Checks {
			out[i].checkPaths = append(out[i].checkPaths, fmt.Sprintf("%s.checks[%d]", out[i].disp, j))
		}
	}
	return out
}

// validate normalizes a copy of a file's service and validates it as the agent will
// (definition.Service.Validate), naming each problem by its place in the file. It
// returns the normalized copy, whose IDs the agent will use.
func (fs *fileService) validate(file string, scriptChecks bool) (definition.Service, Errors) {
	norm := fs.def.Clone()
	norm.Normalize()
	var errs Errors
	if err := norm.Validate(definition.Policy{EnableScriptChecks: scriptChecks}); err != nil {
		forEachFieldError(err, func(field, why string) {
			errs = append(errs, &Error{File: file, Field: fs.place(field), Reason: why})
		})
	}
	return norm, errs
}

// place maps a validation error's field path ("service.checks[1].http", checks
// counted after Normalize put "check" first) to the file's ("services[2].check.http").
func (fs *fileService) place(field string) string {
	rest, ok := strings.CutPrefix(field, "service.checks[")
	if ok {
		if i := strings.IndexByte(rest, ']'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil && n < len(fs.checkPaths) {
				return fs.checkPaths[n] + rest[i+1:]
			}
		}
	}
	if rest, ok := strings.CutPrefix(field, "service."); ok {
		return fs.disp + "." + rest
	}
	if field == "service" || field == "" {
		return fs.disp
	}
	return fs.disp + "." + field
}
