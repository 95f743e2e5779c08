package wtd

// The structured transport's serializers. A Go value is first turned into a tree of
// values (like the Rust side's `Value`, with struct fields in declaration order and
// encoding/json's field rules), which is then written as JSON or MessagePack. The
// bytes are exactly what the library's Rust serializers write for the same value:
//
//   - JSON: Python's json.dumps(obj, separators=(",", ":")) with ensure_ascii
//     (pywebtransport's JSON serializer): compact, every non-ASCII character and DEL
//     escaped as lowercase \uXXXX (surrogate pairs beyond the BMP), "<", ">" and "&"
//     NOT escaped (unlike encoding/json), floats spelled like Python's repr ("1.0",
//     "1e+16", "1.5e-05"), non-finite floats written as null.
//   - MessagePack: rmp-serde's to_vec_named: a struct is a map of field names to
//     values (not an array), integers in their most compact form, every float as a
//     float 64 (a float32 as the double nearest its shortest decimal text, like the
//     Rust side), strings as str8/16/32, []byte as bin.
//
// Decoding uses encoding/json's rules in both formats (a MessagePack payload is
// turned into the same tree and then decoded like JSON).

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Format is the serialization format of a structured transport.
type Format int

// Formats (wtd_serializer values).
const (
	FormatJSON    Format = 0 // WTD_SERIALIZER_JSON
	FormatMsgPack Format = 1 // WTD_SERIALIZER_MSGPACK
)

func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatMsgPack:
		return "msgpack"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Marshal serializes v in the format, byte-identical to the library's serializer
// for the same value. Unsupported values (channels, functions, complex numbers,
// maps with keys that are not strings, integers or TextMarshalers) are
// ErrInvalidArgument.
func (f Format) Marshal(v any) ([]byte, error) {
	n, err := toNode(reflect.ValueOf(v), 0)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "serialization error: " + err.Error()}
	}
	switch f {
	case FormatJSON:
		return appendJSON(nil, &n), nil
	case FormatMsgPack:
		return encodeMsgPack(&n)
	}
	return nil, &Error{Code: CodeInvalidArgument, Msg: "unknown format " + f.String()}
}

// Unmarshal decodes data (one whole value in the format) into v, a non-nil
// pointer, with encoding/json's rules. Data that does not decode, or does not fit
// v, is ErrInvalidData.
func (f Format) Unmarshal(data []byte, v any) error {
	var js []byte
	switch f {
	case FormatJSON:
		js = data
	case FormatMsgPack:
		n, err := decodeMsgPack(data)
		if err != nil {
			return &Error{Code: CodeInvalidData, Msg: "invalid MessagePack: " + err.Error()}
		}
		js = appendJSON(nil, &n)
	default:
		return &Error{Code: CodeInvalidArgument, Msg: "unknown format " + f.String()}
	}
	if err := json.Unmarshal(js, v); err != nil {
		var ie *json.InvalidUnmarshalError
		if errors.As(err, &ie) {
			return &Error{Code: CodeInvalidArgument, Msg: err.Error()}
		}
		return &Error{Code: CodeInvalidData, Msg: "deserialization error: " + err.Error()}
	}
	return nil
}

// Normalize re-emits a serialized value the way the library sends it: JSON is
// parsed (keeping member order) and written in the Python-compatible form;
// MessagePack is checked to be exactly one value and returned unchanged.
func (f Format) Normalize(data []byte) ([]byte, error) {
	switch f {
	case FormatJSON:
		n, err := parseJSON(data)
		if err != nil {
			return nil, &Error{Code: CodeInvalidArgument, Msg: "invalid JSON: " + err.Error()}
		}
		return appendJSON(nil, &n), nil
	case FormatMsgPack:
		if _, err := decodeMsgPack(data); err != nil {
			return nil, &Error{Code: CodeInvalidArgument, Msg: "invalid MessagePack: " + err.Error()}
		}
		return append([]byte(nil), data...), nil
	}
	return nil, &Error{Code: CodeInvalidArgument, Msg: "unknown format " + f.String()}
}

// ------------------------------------------------------------------------------------
// The value tree

type nodeKind uint8

const (
	nNull nodeKind = iota
	nBool
	nInt  // negative integers
	nUint // non-negative integers
	nFloat
	nString
	nBytes
	nArray
	nMap
)

// node is one value; a map keeps its entries in order (keys[i] -> items[i]).
type node struct {
	kind  nodeKind
	b     bool
	i     int64
	u     uint64
	f     float64
	s     string
	raw   []byte
	keys  []string
	items []node
}

const maxDepth = 1000

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func intNode(i int64) node {
	if i < 0 {
		return node{kind: nInt, i: i}
	}
	return node{kind: nUint, u: uint64(i)}
}

func floatNode(f float64) node {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return node{} // written as null, like the Rust side (serde_json)
	}
	return node{kind: nFloat, f: f}
}

// float32Value is the double the Rust side keeps for an f32: its shortest decimal
// text read as a double.
func float32Value(f float32) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	if err != nil {
		return float64(f)
	}
	return v
}

// toNode converts a Go value with encoding/json's rules (Marshaler, TextMarshaler,
// struct tags, omitempty, embedded structs, sorted map keys).
func toNode(v reflect.Value, depth int) (node, error) {
	if depth > maxDepth {
		return node{}, errors.New("value nested too deeply (cycle?)")
	}
	if !v.IsValid() {
		return node{}, nil
	}
	t := v.Type()
	if t.Kind() != reflect.Pointer && v.CanAddr() && reflect.PointerTo(t).Implements(jsonMarshalerType) {
		return marshalerNode(v.Addr())
	}
	if t.Implements(jsonMarshalerType) {
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			return node{}, nil
		}
		return marshalerNode(v)
	}
	if t.Kind() != reflect.Pointer && v.CanAddr() && reflect.PointerTo(t).Implements(textMarshalerType) {
		return textNode(v.Addr())
	}
	if t.Implements(textMarshalerType) {
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			return node{}, nil
		}
		return textNode(v)
	}
	switch t.Kind() {
	case reflect.Bool:
		return node{kind: nBool, b: v.Bool()}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intNode(v.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return node{kind: nUint, u: v.Uint()}, nil
	case reflect.Float32:
		return floatNode(float32Value(float32(v.Float()))), nil
	case reflect.Float64:
		return floatNode(v.Float()), nil
	case reflect.String:
		return node{kind: nString, s: v.String()}, nil
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return node{}, nil
		}
		return toNode(v.Elem(), depth+1)
	case reflect.Slice:
		if v.IsNil() {
			return node{}, nil
		}
		if isByteSlice(t) {
			b := v.Bytes()
			if b == nil {
				b = []byte{}
			}
			return node{kind: nBytes, raw: append([]byte{}, b...)}, nil
		}
		fallthrough
	case reflect.Array:
		n := node{kind: nArray, items: make([]node, v.Len())}
		for i := range n.items {
			e, err := toNode(v.Index(i), depth+1)
			if err != nil {
				return node{}, err
			}
			n.items[i] = e
		}
		return n, nil
	case reflect.Map:
		if v.IsNil() {
			return node{}, nil
		}
		type kv struct {
			k string
			v reflect.Value
		}
		entries := make([]kv, 0, v.Len())
		it := v.MapRange()
		for it.Next() {
			k, err := mapKey(it.Key())
			if err != nil {
				return node{}, err
			}
			entries = append(entries, kv{k, it.Value()})
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].k < entries[j].k })
		n := node{kind: nMap, keys: make([]string, len(entries)), items: make([]node, len(entries))}
		for i, e := range entries {
			c, err := toNode(e.v, depth+1)
			if err != nil {
				return node{}, err
			}
			n.keys[i], n.items[i] = e.k, c
		}
		return n, nil
	case reflect.Struct:
		fields := cachedFields(t)
		n := node{kind: nMap, keys: make([]string, 0, len(fields)), items: make([]node, 0, len(fields))}
	fieldLoop:
		for _, f := range fields {
			fv := v
			for _, i := range f.index {
				if fv.Kind() == reflect.Pointer {
					if fv.IsNil() {
						continue fieldLoop // embedded nil pointer: its fields are absent
					}
					fv = fv.Elem()
				}
				fv = fv.Field(i)
			}
			if f.omitEmpty && isEmptyValue(fv) || f.omitZero && isZero(fv) {
				continue
			}
			c, err := toNode(fv, depth+1)
			if err != nil {
				return node{}, err
			}
			if f.quoted {
				c = quotedNode(c)
			}
			n.keys = append(n.keys, f.name)
			n.items = append(n.items, c)
		}
		return n, nil
	}
	return node{}, fmt.Errorf("unsupported type %s", t)
}

func isByteSlice(t reflect.Type) bool {
	e := t.Elem()
	return e.Kind() == reflect.Uint8 &&
		!e.Implements(jsonMarshalerType) && !reflect.PointerTo(e).Implements(jsonMarshalerType) &&
		!e.Implements(textMarshalerType) && !reflect.PointerTo(e).Implements(textMarshalerType)
}

func marshalerNode(v reflect.Value) (node, error) {
	b, err := v.Interface().(json.Marshaler).MarshalJSON()
	if err != nil {
		return node{}, err
	}
	return parseJSON(b)
}

func textNode(v reflect.Value) (node, error) {
	b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
	if err != nil {
		return node{}, err
	}
	return node{kind: nString, s: string(b)}, nil
}

func mapKey(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		if k.Kind() == reflect.Pointer && k.IsNil() {
			return "", nil
		}
		b, err := tm.MarshalText()
		return string(b), err
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", fmt.Errorf("unsupported map key type %s", k.Type())
}

// quotedNode applies the ",string" tag option: a scalar becomes its JSON text.
func quotedNode(n node) node {
	switch n.kind {
	case nBool, nInt, nUint, nFloat:
		return node{kind: nString, s: string(appendJSON(nil, &n))}
	case nString:
		return node{kind: nString, s: string(appendJSON(nil, &n))}
	}
	return n
}

func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

func isZero(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	return v.IsZero()
}

// ------------------------------------------------------------------------------------
// Struct fields (encoding/json's rules: tags, embedded structs, dominant fields)

type field struct {
	name      string
	tagged    bool
	index     []int
	omitEmpty bool
	omitZero  bool
	quoted    bool
}

var fieldCache sync.Map // reflect.Type -> []field

func cachedFields(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	f, _ := fieldCache.LoadOrStore(t, typeFields(t))
	return f.([]field)
}

func typeFields(t reflect.Type) []field {
	type entry struct {
		typ   reflect.Type
		index []int
	}
	var fields []field
	next := []entry{{typ: t}}
	count, nextCount := map[reflect.Type]int{}, map[reflect.Type]int{t: 1}
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current := next
		next = nil
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, e := range current {
			if visited[e.typ] {
				continue
			}
			visited[e.typ] = true
			for i := 0; i < e.typ.NumField(); i++ {
				sf := e.typ.Field(i)
				if sf.Anonymous {
					ft := sf.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				index := append(append([]int(nil), e.index...), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					f := field{name: name, tagged: name != "", index: index}
					if name == "" {
						f.name = sf.Name
					}
					for _, o := range strings.Split(opts, ",") {
						switch o {
						case "omitempty":
							f.omitEmpty = true
						case "omitzero":
							f.omitZero = true
						case "string":
							switch ft.Kind() {
							case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
								reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
								reflect.Float32, reflect.Float64, reflect.String:
								f.quoted = true
							}
						}
					}
					fields = append(fields, f)
					if count[e.typ] > 1 {
						// Two embeddings of the same type at one depth annihilate each other.
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, entry{typ: ft, index: index})
				}
			}
		}
	}
	// Keep the dominant field of each name: shallowest, then tagged; ties drop all.
	sort.SliceStable(fields, func(i, j int) bool {
		a, b := fields[i], fields[j]
		if a.name != b.name {
			return a.name < b.name
		}
		if len(a.index) != len(b.index) {
			return len(a.index) < len(b.index)
		}
		if a.tagged != b.tagged {
			return a.tagged
		}
		return lessIndex(a.index, b.index)
	})
	out := fields[:0]
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		group := fields[i:j]
		if len(group) == 1 || len(group[0].index) < len(group[1].index) ||
			group[0].tagged != group[1].tagged {
			out = append(out, group[0])
		}
		i = j
	}
	sort.Slice(out, func(i, j int) bool { return lessIndex(out[i].index, out[j].index) })
	return out
}

func lessIndex(a, b []int) bool {
	for k := range a {
		if k >= len(b) {
			return false
		}
		if a[k] != b[k] {
			return a[k] < b[k]
		}
	}
	return len(a) < len(b)
}

// ------------------------------------------------------------------------------------
// JSON writer (Python's compact ensure_ascii form)

const hexDigits = "0123456789abcdef"

func appendJSON(b []byte, n *node) []byte {
	switch n.kind {
	case nNull:
		return append(b, "null"...)
	case nBool:
		if n.b {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case nInt:
		return strconv.AppendInt(b, n.i, 10)
	case nUint:
		return strconv.AppendUint(b, n.u, 10)
	case nFloat:
		return appendPyFloat(b, n.f)
	case nString:
		return appendJSONString(b, n.s)
	case nBytes:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, n.raw)
		return append(b, '"')
	case nArray:
		b = append(b, '[')
		for i := range n.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, &n.items[i])
		}
		return append(b, ']')
	case nMap:
		b = append(b, '{')
		for i := range n.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, n.keys[i])
			b = append(b, ':')
			b = appendJSON(b, &n.items[i])
		}
		return append(b, '}')
	}
	return b
}

func appendU4(b []byte, u uint16) []byte {
	return append(b, '\\', 'u', hexDigits[u>>12], hexDigits[u>>8&15], hexDigits[u>>4&15], hexDigits[u&15])
}

// appendJSONString writes s quoted, escaped like Python's json.dumps with
// ensure_ascii (and serde_json's short escapes): \" \\ \b \f \n \r \t, other
// controls, DEL and all non-ASCII as lowercase \uXXXX. Invalid UTF-8 becomes
// \ufffd.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c < 0x80 {
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = appendU4(b, uint16(c))
			}
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r >= 0x10000 {
				r1, r2 := utf16.EncodeRune(r)
				b = appendU4(appendU4(b, uint16(r1)), uint16(r2))
			} else {
				b = appendU4(b, uint16(r)) // RuneError (U+FFFD) for invalid bytes
			}
			i += size
		}
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendPyFloat writes a finite float like Python's repr: shortest round-trip
// digits, positional for decimal exponents -4..15 (always with a fraction, "1.0"),
// scientific otherwise with a signed exponent of at least two digits ("1e+16").
func appendPyFloat(b []byte, v float64) []byte {
	if v < 0 || v == 0 && math.Signbit(v) {
		b = append(b, '-')
		v = -v
	}
	if v == 0 {
		return append(b, "0.0"...)
	}
	var tmp [32]byte
	sci := strconv.AppendFloat(tmp[:0], v, 'e', -1, 64) // "1.5e-05", "1e+16"
	e := bytes.IndexByte(sci, 'e')
	exp, _ := strconv.Atoi(string(sci[e+1:]))
	var dbuf [24]byte
	digits := dbuf[:0]
	for _, c := range sci[:e] {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	if exp >= -4 && exp < 16 {
		if exp >= 0 {
			if len(digits) > exp+1 {
				b = append(b, digits[:exp+1]...)
				b = append(b, '.')
				return append(b, digits[exp+1:]...)
			}
			b = append(b, digits...)
			for k := len(digits); k < exp+1; k++ {
				b = append(b, '0')
			}
			return append(b, '.', '0')
		}
		b = append(b, '0', '.')
		for k := 0; k < -exp-1; k++ {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	b = append(b, digits[0])
	if len(digits) > 1 {
		b = append(b, '.')
		b = append(b, digits[1:]...)
	}
	b = append(b, 'e')
	if exp < 0 {
		b = append(b, '-')
		exp = -exp
	} else {
		b = append(b, '+')
	}
	if exp < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(exp), 10)
}

// ------------------------------------------------------------------------------------
// JSON reader (keeps member order; numbers as the Rust side reads them)

func parseJSON(data []byte) (node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := parseJSONValue(dec, 0)
	if err != nil {
		return node{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("trailing data after the value")
		}
		return node{}, err
	}
	return n, nil
}

func parseJSONValue(dec *json.Decoder, depth int) (node, error) {
	if depth > maxDepth {
		return node{}, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return node{}, err
	}
	switch t := tok.(type) {
	case nil:
		return node{}, nil
	case bool:
		return node{kind: nBool, b: t}, nil
	case string:
		return node{kind: nString, s: t}, nil
	case json.Number:
		return numberNode(string(t))
	case json.Delim:
		n := node{kind: nArray}
		if t == '{' {
			n.kind = nMap
		}
		for dec.More() {
			if n.kind == nMap {
				k, err := dec.Token()
				if err != nil {
					return node{}, err
				}
				ks, ok := k.(string)
				if !ok {
					return node{}, errors.New("object key is not a string")
				}
				n.keys = append(n.keys, ks)
			}
			c, err := parseJSONValue(dec, depth+1)
			if err != nil {
				return node{}, err
			}
			n.items = append(n.items, c)
		}
		if _, err := dec.Token(); err != nil { // closing delimiter
			return node{}, err
		}
		return n, nil
	}
	return node{}, fmt.Errorf("unexpected token %v", tok)
}

// numberNode reads a JSON number as serde_json does: integers as 64-bit integers
// (floats beyond that range, and "-0" as -0.0), anything with a fraction or an
// exponent as a double.
func numberNode(s string) (node, error) {
	if !strings.ContainsAny(s, ".eE") {
		if strings.HasPrefix(s, "-") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil && i != 0 {
				return node{kind: nInt, i: i}, nil
			}
		} else if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return node{kind: nUint, u: u}, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return node{}, err
	}
	return floatNode(f), nil
}

// ------------------------------------------------------------------------------------
// MessagePack

func encodeMsgPack(n *node) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	if err := writeMsgPack(enc, n); err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "serialization error: " + err.Error()}
	}
	return buf.Bytes(), nil
}

func writeMsgPack(enc *msgpack.Encoder, n *node) error {
	switch n.kind {
	case nNull:
		return enc.EncodeNil()
	case nBool:
		return enc.EncodeBool(n.b)
	case nInt:
		return enc.EncodeInt(n.i)
	case nUint:
		return enc.EncodeUint(n.u)
	case nFloat:
		return enc.EncodeFloat64(n.f)
	case nString:
		return enc.EncodeString(n.s)
	case nBytes:
		if n.raw == nil {
			return enc.EncodeBytes([]byte{})
		}
		return enc.EncodeBytes(n.raw)
	case nArray:
		if err := enc.EncodeArrayLen(len(n.items)); err != nil {
			return err
		}
		for i := range n.items {
			if err := writeMsgPack(enc, &n.items[i]); err != nil {
				return err
			}
		}
		return nil
	case nMap:
		if err := enc.EncodeMapLen(len(n.items)); err != nil {
			return err
		}
		for i := range n.items {
			if err := enc.EncodeString(n.keys[i]); err != nil {
				return err
			}
			if err := writeMsgPack(enc, &n.items[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("bad node kind %d", n.kind)
}

// decodeMsgPack reads exactly one MessagePack value (trailing bytes are an error).
// Map keys must be strings; extension types are not supported.
func decodeMsgPack(data []byte) (node, error) {
	r := bytes.NewReader(data)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(r)
	n, err := readMsgPack(dec, r, 0)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return node{}, err
	}
	if r.Len() != 0 {
		return node{}, fmt.Errorf("%d trailing bytes", r.Len())
	}
	return n, nil
}

func readMsgPack(d *msgpack.Decoder, r *bytes.Reader, depth int) (node, error) {
	if depth > maxDepth {
		return node{}, errors.New("nested too deeply")
	}
	c, err := d.PeekCode()
	if err != nil {
		return node{}, err
	}
	switch {
	case c <= msgpcode.PosFixedNumHigh || c == msgpcode.Uint8 || c == msgpcode.Uint16 ||
		c == msgpcode.Uint32 || c == msgpcode.Uint64:
		u, err := d.DecodeUint64()
		return node{kind: nUint, u: u}, err
	case c >= msgpcode.NegFixedNumLow || c == msgpcode.Int8 || c == msgpcode.Int16 ||
		c == msgpcode.Int32 || c == msgpcode.Int64:
		i, err := d.DecodeInt64()
		return intNode(i), err
	case c == msgpcode.Nil:
		return node{}, d.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		b, err := d.DecodeBool()
		return node{kind: nBool, b: b}, err
	case c == msgpcode.Float:
		f, err := d.DecodeFloat32()
		return floatNode(float64(f)), err
	case c == msgpcode.Double:
		f, err := d.DecodeFloat64()
		return floatNode(f), err
	case msgpcode.IsString(c):
		s, err := d.DecodeString()
		return node{kind: nString, s: s}, err
	case msgpcode.IsBin(c):
		b, err := d.DecodeBytes()
		if b == nil {
			b = []byte{}
		}
		return node{kind: nBytes, raw: b}, err
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		l, err := d.DecodeArrayLen()
		if err != nil {
			return node{}, err
		}
		n := node{kind: nArray, items: make([]node, 0, min(l, r.Len()))}
		for k := 0; k < l; k++ {
			e, err := readMsgPack(d, r, depth+1)
			if err != nil {
				return node{}, err
			}
			n.items = append(n.items, e)
		}
		return n, nil
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		l, err := d.DecodeMapLen()
		if err != nil {
			return node{}, err
		}
		capacity := min(l, r.Len()/2)
		n := node{kind: nMap, keys: make([]string, 0, capacity), items: make([]node, 0, capacity)}
		for k := 0; k < l; k++ {
			kc, err := d.PeekCode()
			if err != nil {
				return node{}, err
			}
			if !msgpcode.IsString(kc) {
				return node{}, fmt.Errorf("map key of type 0x%02x is not a string", kc)
			}
			key, err := d.DecodeString()
			if err != nil {
				return node{}, err
			}
			v, err := readMsgPack(d, r, depth+1)
			if err != nil {
				return node{}, err
			}
			n.keys = append(n.keys, key)
			n.items = append(n.items, v)
		}
		return n, nil
	}
	return node{}, fmt.Errorf("unsupported MessagePack type 0x%02x", c)
}
