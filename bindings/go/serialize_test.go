package wtd

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The byte vectors written by real Python's json.dumps and msgpack-python's packb
// (testdata/gen_structured_vectors.py), shared with the Rust side
// (src/datagram/structured.rs checks the same file).
type vector struct {
	Name        string `json:"name"`
	Input       string `json:"input"`  // JSON-sourced
	Python      string `json:"python"` // MessagePack-sourced (a Python value)
	JSON        string `json:"json"`
	JSONCompact string `json:"json_compact"`
	MsgPack     string `json:"msgpack"`
}

func loadVectors(t *testing.T) map[string]vector {
	t.Helper()
	b, err := os.ReadFile("testdata/structured_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Vectors []vector }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]vector{}
	for _, v := range doc.Vectors {
		out[v.Name] = v
	}
	if len(out) < 12 {
		t.Fatalf("only %d vectors", len(out))
	}
	return out
}

// Go values of some vectors, as an application would declare them.
type vNamed struct {
	Name string `json:"name"`
	X    int    `json:"x"`
}

type vOrder struct {
	Zeta  uint8     `json:"zeta"`
	Alpha []float64 `json:"alpha"`
	Mid   *bool     `json:"mid"`
}

type vPlayer struct {
	ID   int        `json:"id"`
	Pos  [2]float32 `json:"pos"`
	Name string     `json:"name"`
}

type vNested struct {
	Player vPlayer        `json:"player"`
	Tags   []string       `json:"tags"`
	Empty  map[string]int `json:"empty"`
	List   []int          `json:"list"`
	OK     bool           `json:"ok"`
}

type vXY struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

type vGamePlayer struct {
	ID  int `json:"id"`
	vXY     // embedded: its fields are promoted, in place
	HP  int `json:"hp"`
}

type vGameState struct {
	Tick    uint32        `json:"tick"`
	Players []vGamePlayer `json:"players"`
	Event   string        `json:"event"`
	secret  int           //nolint:unused // unexported: never serialized
}

type vSizes struct {
	S31  string         `json:"s31"`
	S32  string         `json:"s32"`
	S255 string         `json:"s255"`
	S256 string         `json:"s256"`
	A15  []int          `json:"a15"`
	A16  []int16        `json:"a16"`
	M16  map[string]int `json:"m16"`
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func typedVectors() map[string]any {
	m16 := map[string]int{}
	for i := 0; i < 16; i++ {
		m16["k"+string(rune('0'+i/10))+string(rune('0'+i%10))] = i
	}
	a16 := make([]int16, 16)
	for i := range a16 {
		a16[i] = int16(i)
	}
	point1 := 0.1 // a variable: constant arithmetic would be exact
	return map[string]any{
		"named":             vNamed{"é", 1},
		"declaration_order": vOrder{3, []float64{1, 0.5, -2.25}, nil},
		"escapes":           "日本😀\x7f\n\t\"\\\x01\x1f\b\f\r/<>&'\u2028\u00ff\uffff",
		"integers": []any{true, false, nil, 0, uint8(1), int8(127), uint8(128), uint16(255), 256, uint16(65535),
			int32(65536), uint32(4294967295), int64(4294967296), uint64(math.MaxUint64), -1, int8(-32), -33,
			int8(-128), int16(-129), int16(-32768), int32(-32769), int32(math.MinInt32), int64(-2147483649),
			int64(math.MinInt64)},
		"floats": []float64{1, 0.1, math.Copysign(0, -1), 100, 1e15, 1e16, 1.5e16, 0.0001, 1e-05, 1.5e-7, 1e100,
			123456.789, math.MaxFloat64, 5e-324, -2.5, point1 + 0.2},
		"sizes": vSizes{strings.Repeat("a", 31), strings.Repeat("b", 32), strings.Repeat("c", 255),
			strings.Repeat("d", 256), seq(15), a16, m16},
		"nested": vNested{vPlayer{7, [2]float32{1.5, -2}, "Zoë"}, []string{"a", "b"}, map[string]int{}, []int{}, true},
		"game_state": vGameState{Tick: 1024, Players: []vGamePlayer{
			{ID: 1, vXY: vXY{10.5, -3.25}, HP: 100}, {ID: 2, vXY: vXY{0, 7}, HP: 0}}, Event: "hit → 🎯", secret: 9},
		"non_finite": []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1)},
	}
}

func mustJSON(t *testing.T, n *node, sep separators) string {
	t.Helper()
	b, err := appendJSON(nil, n, sep)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSharedVectorsGeneric(t *testing.T) {
	for name, v := range loadVectors(t) {
		var n node
		if v.Input != "" {
			var err error
			if n, err = parseJSON([]byte(v.Input)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got, _ := FormatJSON.Normalize([]byte(v.Input)); string(got) != v.JSON {
				t.Errorf("%s: normalize %s", name, got)
			}
			if got, _ := FormatJSONCompact.Normalize([]byte(v.Input)); string(got) != v.JSONCompact {
				t.Errorf("%s: normalize compact %s", name, got)
			}
		} else {
			// MessagePack-sourced: reading and writing it again gives the same bytes.
			var err error
			if n, err = decodeMsgPack(mustHex(t, v.MsgPack)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if v.JSON != "" {
			if got := mustJSON(t, &n, pySeps); got != v.JSON {
				t.Errorf("%s: json\n got %s\nwant %s", name, got, v.JSON)
			}
			if got := mustJSON(t, &n, compactSeps); got != v.JSONCompact {
				t.Errorf("%s: json compact\n got %s\nwant %s", name, got, v.JSONCompact)
			}
		}
		mp, err := encodeMsgPack(&n)
		if err != nil || hex.EncodeToString(mp) != v.MsgPack {
			t.Errorf("%s: msgpack\n got %x (%v)\nwant %s", name, mp, err, v.MsgPack)
		}
		// MessagePack reads back to the same value.
		back, err := decodeMsgPack(mp)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if again, _ := encodeMsgPack(&back); !bytes.Equal(again, mp) {
			t.Errorf("%s: msgpack read back as %x", name, again)
		}
	}
}

func TestSharedVectorsTyped(t *testing.T) {
	vectors := loadVectors(t)
	for name, val := range typedVectors() {
		v, ok := vectors[name]
		if !ok {
			t.Fatalf("no vector %q", name)
		}
		js, err := FormatJSON.Marshal(val)
		if err != nil || string(js) != v.JSON {
			t.Errorf("%s: json\n got %s (%v)\nwant %s", name, js, err, v.JSON)
		}
		jc, err := FormatJSONCompact.Marshal(val)
		if err != nil || string(jc) != v.JSONCompact {
			t.Errorf("%s: json compact\n got %s (%v)\nwant %s", name, jc, err, v.JSONCompact)
		}
		mp, err := FormatMsgPack.Marshal(val)
		if err != nil || hex.EncodeToString(mp) != v.MsgPack {
			t.Errorf("%s: msgpack\n got %x (%v)\nwant %s", name, mp, err, v.MsgPack)
		}
		if name == "integers" || name == "floats" || name == "non_finite" {
			continue // round trips of mixed []any / -0.0 are covered below; NaN cannot be
		}
		// Every format decodes back into the same Go value.
		for _, f := range []Format{FormatJSON, FormatJSONCompact, FormatMsgPack} {
			data := js
			switch f {
			case FormatMsgPack:
				data = mp
			case FormatJSONCompact:
				data = jc
			}
			ptr := reflect.New(reflect.TypeOf(val))
			if err := f.Unmarshal(data, ptr.Interface()); err != nil {
				t.Fatalf("%s %s: %v", name, f, err)
			}
			want := val
			if gs, ok := val.(vGameState); ok {
				gs.secret = 0
				want = gs
			}
			if got := ptr.Elem().Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: decoded %+v, want %+v", name, f, got, want)
			}
		}
	}
	var fl []float64
	if err := FormatMsgPack.Unmarshal(mustHex(t, vectors["floats"].MsgPack), &fl); err != nil {
		t.Fatal(err)
	}
	if !math.Signbit(fl[2]) || fl[13] != 5e-324 || fl[15] != 0.30000000000000004 {
		t.Fatalf("floats %v", fl)
	}
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type textKey struct{ a, b int }

func (k textKey) MarshalText() ([]byte, error) { return []byte{byte('a' + k.a), byte('a' + k.b)}, nil }

type custom struct{ v string }

func (c custom) MarshalJSON() ([]byte, error) {
	return []byte(`{ "z" : 1.50, "a" : [ "` + c.v + `" ] }`), nil
}

func TestSerializerRules(t *testing.T) {
	type inner struct {
		A int `json:"a"`
	}
	type rules struct {
		Skip     int              `json:"-"`
		Omit     string           `json:"omit,omitempty"`
		OmitZero time.Time        `json:"oz,omitzero"`
		Quoted   int              `json:"q,string"`
		Raw      []byte           `json:"raw"`
		NilSlice []int            `json:"nil_slice"`
		F32      float32          `json:"f32"`
		NaN      float64          `json:"nan"`
		Keys     map[textKey]bool `json:"keys"`
		IntKeys  map[int]string   `json:"int_keys"`
		Custom   custom           `json:"custom"`
		Time     time.Time        `json:"time"`
		Ptr      *inner           `json:"ptr"`
		Any      any              `json:"any"`
		Iface    map[string]any   `json:"iface"`
		NoTag    bool
		Unicode  string `json:"ü"`
	}
	v := rules{
		Skip: 1, Quoted: 42, Raw: []byte{0, 1, 0xff}, F32: 0.1, NaN: math.NaN(),
		Keys: map[textKey]bool{{1, 2}: true, {0, 0}: false}, IntKeys: map[int]string{10: "x", 9: "y"},
		Custom: custom{"é"}, Time: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), Ptr: &inner{3},
		Any: 2.0, Iface: map[string]any{"b": []any{1, "<&>"}, "a": nil}, NoTag: true, Unicode: "ß",
	}
	js, err := FormatJSON.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	// Python's json.dumps of the same dict (default separators; NaN as NaN; int keys
	// as their text, Go's map keys sorted by that text).
	want := `{"q": "42", "raw": "AAH/", "nil_slice": null, "f32": 0.1, "nan": NaN, "keys": {"aa": false, "bc": true}, ` +
		`"int_keys": {"10": "x", "9": "y"}, "custom": {"z": 1.5, "a": ["\u00e9"]}, "time": "2024-05-06T07:08:09Z", ` +
		`"ptr": {"a": 3}, "any": 2.0, "iface": {"a": null, "b": [1, "<&>"]}, "NoTag": true, "\u00fc": "\u00df"}`
	if string(js) != want {
		t.Fatalf("json\n got %s\nwant %s", js, want)
	}
	// MessagePack: the same tree; []byte is bin, the float32 a float 64 of 0.1, NaN a
	// float 64, integer keys integers (msgpack.packb({10: "x", 9: "y"})).
	mp, err := FormatMsgPack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(mp, []byte("\xa3raw\xc4\x03\x00\x01\xff")) ||
		!bytes.Contains(mp, []byte("\xa3f32\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a")) ||
		!bytes.Contains(mp, []byte("\xa3nan\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00")) ||
		!bytes.Contains(mp, []byte("\xa8int_keys\x82\x0a\xa1x\x09\xa1y")) {
		t.Fatalf("msgpack %x", mp)
	}
	var back struct {
		Quoted  int            `json:"q,string"`
		Raw     []byte         `json:"raw"`
		F32     float32        `json:"f32"`
		Time    time.Time      `json:"time"`
		Ptr     *inner         `json:"ptr"`
		IntKeys map[int]string `json:"int_keys"`
	}
	// encoding/json cannot read NaN: without it the rest decodes.
	v.NaN = 1.5
	mp, err = FormatMsgPack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := FormatMsgPack.Unmarshal(mp, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Raw, v.Raw) || back.Quoted != 42 || back.F32 != 0.1 || !back.Time.Equal(v.Time) ||
		back.Ptr.A != 3 || back.IntKeys[10] != "x" || back.IntKeys[9] != "y" {
		t.Fatalf("decoded %+v", back)
	}
	// A payload with NaN (what Python may send) is ErrInvalidData, in both formats.
	var f struct{ X float64 }
	if err := FormatJSON.Unmarshal([]byte(`{"X": NaN}`), &f); !errors.Is(err, ErrInvalidData) {
		t.Fatalf("json NaN: %v", err)
	}
	if err := FormatMsgPack.Unmarshal([]byte("\x81\xa1X\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), &f); !errors.Is(err, ErrInvalidData) {
		t.Fatalf("msgpack NaN: %v", err)
	}

	// Errors are typed.
	if _, err := FormatJSON.Marshal(make(chan int)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("chan: %v", err)
	}
	if _, err := FormatMsgPack.Marshal(map[[2]int]int{{1, 2}: 3}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("array keys: %v", err)
	}
	if _, err := Format(9).Marshal(1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad format: %v", err)
	}
	var n vNamed
	for _, c := range []struct {
		f    Format
		data string
	}{
		{FormatJSON, `{"name":1}`}, {FormatJSON, `{nope`},
		{FormatMsgPack, "\xc1"}, {FormatMsgPack, "\x01\x02"}, {FormatMsgPack, "\x92\x01"},
		{FormatMsgPack, "\x81\x91\x01\x02"}, // an array as a key: no JSON form
	} {
		if err := c.f.Unmarshal([]byte(c.data), &n); !errors.Is(err, ErrInvalidData) {
			t.Fatalf("%s %q: %v", c.f, c.data, err)
		}
	}
	if err := FormatJSON.Unmarshal([]byte(`{}`), n); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("non-pointer: %v", err)
	}
	if _, err := FormatJSON.Normalize([]byte(`{} trailing`)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("trailing: %v", err)
	}
	if _, err := FormatMsgPack.Normalize([]byte{0x01, 0x02}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("trailing msgpack: %v", err)
	}
}
