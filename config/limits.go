package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	hclscanner "github.com/hashicorp/hcl/hcl/scanner"
	hcltoken "github.com/hashicorp/hcl/hcl/token"
)

// The bounds on a config file, checked before it is parsed. The HCL and JSON
// decoders and the schema walk recurse once per level of nesting: an 8 MB file of
// nested blocks overflowed the goroutine stack, a fatal error that no recover
// catches, killing a running agent on SIGHUP. Consul's schema nests about eight
// levels deep (services[].checks[].header.name[]), HCL blocks add a list around
// each object, and a config dir of 10,000 services is about 2 MB.
const (
	// MaxFileSize is the largest config file read, in bytes: 16 MiB.
	MaxFileSize = 16 << 20
	// MaxDepth is the deepest nesting of objects and lists a file may have; in HCL
	// each key of a block header (a b c { }) counts as a level, as it decodes to one.
	MaxDepth = 64
)

// errTooDeep is the reason given for a file nested beyond MaxDepth.
var errTooDeep = fmt.Errorf("nested more than %d levels deep: config files nest a few levels (services[].checks[].header); is this the right file?", MaxDepth)

// readBounded reads a file of at most MaxFileSize bytes, without reading more of a
// larger one.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, errTooBig
	}
	return b, nil
}

// errTooBig is the reason given for a file over MaxFileSize.
var errTooBig = fmt.Errorf("larger than %d MiB: split the services over several files in a config dir", MaxFileSize>>20)

// checkBounds refuses content over MaxFileSize or nested beyond MaxDepth, without
// recursion, so that parsing it cannot exhaust the stack.
func checkBounds(b []byte, hclSyntax bool) error {
	if len(b) > MaxFileSize {
		return errTooBig
	}
	var deep bool
	if hclSyntax {
		deep = hclTooDeep(b)
	} else {
		deep = jsonTooDeep(b)
	}
	if deep {
		return errTooDeep
	}
	return nil
}

// jsonTooDeep reports whether JSON content nests objects and arrays beyond
// MaxDepth. It stops at the first syntax error: the decoder reports that one.
func jsonTooDeep(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			if depth > MaxDepth {
				return true
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// hclTooDeep reports whether HCL content (or JSON in a .hcl file, which HCL reads
// too) nests beyond MaxDepth. It uses HCL's own scanner, which handles strings,
// heredocs and comments and does not recurse. A block's header keys each count as a
// level: `a b c {` opens three. Scanning errors are left to the parser.
func hclTooDeep(b []byte) bool {
	s := hclscanner.New(b)
	s.Error = func(hcltoken.Pos, string) {} // the parser reports them
	var stack []int                         // levels each open brace or bracket added
	depth, keys := 0, 0
	for {
		tok := s.Scan()
		switch tok.Type {
		case hcltoken.EOF:
			return false
		case hcltoken.IDENT, hcltoken.STRING:
			keys++
			continue
		case hcltoken.LBRACE, hcltoken.LBRACK:
			n := max(keys, 1)
			stack = append(stack, n)
			depth += n
			if depth > MaxDepth {
				return true
			}
		case hcltoken.RBRACE, hcltoken.RBRACK:
			if len(stack) > 0 {
				depth -= stack[len(stack)-1]
				stack = stack[:len(stack)-1]
			}
		}
		keys = 0
	}
}

// boundsError reports a file refused by checkBounds or readBounded, or nil.
func boundsError(path string, err error) Errors {
	if err == nil {
		return nil
	}
	if errors.Is(err, errTooBig) || errors.Is(err, errTooDeep) {
		return Errors{{File: path, Reason: err.Error()}}
	}
	return Errors{{File: path, Reason: fmt.Sprintf("cannot read: %v", unwrapPath(err))}}
}
