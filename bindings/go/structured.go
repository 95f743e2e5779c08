package wtd

/*
#include "wtdatagram.h"
*/
import "C"

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
)

// Registry maps Go types to structured type ids, one to one.
type Registry struct {
	mu     sync.RWMutex
	byID   map[uint16]reflect.Type
	byType map[reflect.Type]uint16
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byID: map[uint16]reflect.Type{}, byType: map[reflect.Type]uint16{}}
}

// Register maps id to the type of prototype (e.g. Chat{} or &Chat{}; objects of
// that type are received as that type). ErrInvalidArgument if prototype is nil or
// the id or the type is already registered.
func (r *Registry) Register(id uint16, prototype any) error {
	if prototype == nil {
		return &Error{Code: CodeInvalidArgument, Msg: "prototype is nil"}
	}
	t := reflect.TypeOf(prototype)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID, r.byType = map[uint16]reflect.Type{}, map[reflect.Type]uint16{}
	}
	if _, ok := r.byID[id]; ok {
		return &Error{Code: CodeInvalidArgument, Msg: fmt.Sprintf("type id %d is already registered", id)}
	}
	if other, ok := r.byType[t]; ok {
		return &Error{Code: CodeInvalidArgument, Msg: fmt.Sprintf("type %s is already registered with id %d", t, other)}
	}
	r.byID[id] = t
	r.byType[t] = id
	return nil
}

func (r *Registry) unregister(id uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byType, r.byID[id])
	delete(r.byID, id)
}

// IDOf returns the id v's type is registered under (for a pointer, also its
// element type's).
func (r *Registry) IDOf(v any) (uint16, bool) {
	if v == nil {
		return 0, false
	}
	t := reflect.TypeOf(v)
	r.mu.RLock()
	defer r.mu.RUnlock()
	if id, ok := r.byType[t]; ok {
		return id, true
	}
	if t.Kind() == reflect.Pointer {
		id, ok := r.byType[t.Elem()]
		return id, ok
	}
	return 0, false
}

// TypeOf returns the type registered under id.
func (r *Registry) TypeOf(id uint16) (reflect.Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.byID[id]
	return t, ok
}

// IDs returns the registered ids in increasing order.
func (r *Registry) IDs() []uint16 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]uint16, 0, len(r.byID))
	for id := range r.byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// StructuredConfig holds structured transport options.
type StructuredConfig struct {
	// FormatJSON (the zero value; pywebtransport's JSONSerializer, Python's default
	// separators), FormatJSONCompact (separators (",", ":")) or FormatMsgPack.
	Format Format
	// QueueSize bounds the object and error queues and the stream's queues
	// (default 100, pywebtransport's).
	QueueSize int
	// Registry gives the initial type registrations (copied); more can be added
	// with Structured.Register.
	Registry *Registry
}

// StructuredErrorKind says what was wrong with a rejected datagram.
type StructuredErrorKind int

// Kinds (wtd_structured_error_kind).
const (
	UnknownType StructuredErrorKind = C.WTD_STRUCTURED_UNKNOWN_TYPE // type id not registered
	TooShort    StructuredErrorKind = C.WTD_STRUCTURED_TOO_SHORT    // shorter than the 2-byte header
	DecodeError StructuredErrorKind = C.WTD_STRUCTURED_DECODE_ERROR // payload does not decode
)

func (k StructuredErrorKind) String() string {
	switch k {
	case UnknownType:
		return "unknown type"
	case TooShort:
		return "too short"
	case DecodeError:
		return "decode error"
	}
	return "unknown"
}

// StructuredError reports a received datagram the transport rejected (it was
// counted and skipped).
type StructuredError struct {
	Kind      StructuredErrorKind
	TypeID    uint16 // valid when HasTypeID
	HasTypeID bool
	Size      int // of the whole datagram
	Message   string
}

// StructuredStats are a structured transport's counters.
type StructuredStats struct {
	Sent, Received                                  uint64
	UnknownType, TooShort, DecodeErrors, QueueDrops uint64
}

// Structured sends and receives typed Go objects over a session's datagrams:
// every datagram is [u16 BE type id][object serialized in the Format],
// wire-compatible with pywebtransport's StructuredDatagramTransport and the
// library's Rust API. It takes over the session's datagrams; Session.Close closes
// it.
type Structured struct {
	s      *Session
	h      *C.wtd_structured
	format Format
	reg    *Registry
	mu     sync.RWMutex
	free   bool
	once   sync.Once
}

// NewStructured creates a structured transport on s (cfg nil: JSON, queues of 100,
// nothing registered). ErrInvalidState if another layer already owns the session's
// datagrams, ErrClosed if the session is closed.
func NewStructured(s *Session, cfg *StructuredConfig) (*Structured, error) {
	if s == nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "session is nil"}
	}
	if cfg == nil {
		cfg = &StructuredConfig{}
	}
	var ser C.enum_wtd_serializer
	switch cfg.Format {
	case FormatJSON:
		ser = C.WTD_SERIALIZER_JSON
	case FormatMsgPack:
		ser = C.WTD_SERIALIZER_MSGPACK
	case FormatJSONCompact:
		ser = C.WTD_SERIALIZER_JSON_COMPACT
	default:
		return nil, &Error{Code: CodeInvalidArgument, Msg: "unknown format " + cfg.Format.String()}
	}
	q := cfg.QueueSize
	if q == 0 {
		q = 100
	}
	if q < 0 {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "queue size must be at least 1"}
	}
	t := &Structured{s: s, format: cfg.Format, reg: NewRegistry()}
	if cfg.Registry != nil {
		cfg.Registry.mu.RLock()
		for id, typ := range cfg.Registry.byID {
			t.reg.byID[id], t.reg.byType[typ] = typ, id
		}
		cfg.Registry.mu.RUnlock()
	}
	err := s.takeOver(t, func(h *C.wtd_session) error {
		if err := call(func() C.enum_wtd_result { return C.wtd_structured_new(h, ser, C.size_t(q), &t.h) }); err != nil {
			return err
		}
		for _, id := range t.reg.IDs() {
			if err := call(func() C.enum_wtd_result { return C.wtd_structured_register_type(t.h, C.uint16_t(id)) }); err != nil {
				C.wtd_structured_free(t.h)
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Structured) use(f func(h *C.wtd_structured) error) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.free {
		return closedErr("structured transport")
	}
	return f(t.h)
}

// Session is the transport's session.
func (t *Structured) Session() *Session { return t.s }

// Format is the transport's serialization format.
func (t *Structured) Format() Format { return t.format }

// Registry is the transport's registry (register through Structured.Register).
func (t *Structured) Registry() *Registry { return t.reg }

// Register maps id to prototype's type on this transport (see
// Registry.Register). Datagrams with unregistered ids are rejected (NextError).
func (t *Structured) Register(id uint16, prototype any) error {
	if err := t.reg.Register(id, prototype); err != nil {
		return err
	}
	err := t.use(func(h *C.wtd_structured) error {
		return call(func() C.enum_wtd_result { return C.wtd_structured_register_type(h, C.uint16_t(id)) })
	})
	if err != nil {
		t.reg.unregister(id)
	}
	return err
}

// Send serializes v (of a registered type, or a pointer to one) and queues it.
// ErrInvalidArgument if its type is not registered or it does not serialize;
// otherwise as Stream.Send (ErrQueueFull, ErrTooLarge, ErrClosed).
func (t *Structured) Send(v any) error {
	id, ok := t.reg.IDOf(v)
	if !ok {
		return &Error{Code: CodeInvalidArgument, Msg: fmt.Sprintf("serialization error: type not registered: %T", v)}
	}
	payload, err := t.format.Marshal(v)
	if err != nil {
		return err
	}
	return t.SendRaw(id, payload)
}

// SendRaw queues an already-serialized payload under a registered id (JSON is
// re-emitted in the Python-compatible form, MessagePack checked and sent as is).
// ErrInvalidArgument for an unregistered id or a payload that does not decode.
func (t *Structured) SendRaw(id uint16, payload []byte) error {
	return t.use(func(h *C.wtd_structured) error {
		p, n := bytesPtr(payload)
		return call(func() C.enum_wtd_result { return C.wtd_structured_send(h, C.uint16_t(id), p, n) })
	})
}

// ReceiveRaw returns the next object's type id and payload as received, waiting
// until ctx is done. ErrClosed once closed and drained.
func (t *Structured) ReceiveRaw(ctx context.Context) (uint16, []byte, error) {
	var id C.uint16_t
	b, err := recvGrow(ctx, func(buf []byte, n *C.size_t, ms C.int32_t) error {
		return t.use(func(h *C.wtd_structured) error {
			p, c := bytesPtr(buf)
			return call(func() C.enum_wtd_result { return C.wtd_structured_receive(h, &id, p, c, n, ms) })
		})
	})
	return uint16(id), b, err
}

// Receive returns the next object as a value of its registered type (the type of
// the prototype given to Register: Chat{} gives a Chat, &Chat{} a *Chat), waiting
// until ctx is done. An object that does not decode as its type is consumed and
// reported as ErrInvalidData.
func (t *Structured) Receive(ctx context.Context) (any, error) {
	id, payload, err := t.ReceiveRaw(ctx)
	if err != nil {
		return nil, err
	}
	typ, ok := t.reg.TypeOf(id)
	if !ok { // registered in C only (cannot happen through this API)
		return nil, &Error{Code: CodeInvalidData, Msg: fmt.Sprintf("type id %d has no Go type", id)}
	}
	elem := typ
	if typ.Kind() == reflect.Pointer {
		elem = typ.Elem()
	}
	p := reflect.New(elem)
	if err := t.format.Unmarshal(payload, p.Interface()); err != nil {
		e := err.(*Error)
		return nil, &Error{Code: e.Code, Msg: fmt.Sprintf("type id %d (%s): %s", id, typ, e.Msg)}
	}
	if typ.Kind() == reflect.Pointer {
		return p.Interface(), nil
	}
	return p.Elem().Interface(), nil
}

// NextError returns the next report of a rejected datagram (unknown type id,
// shorter than the header, undecodable payload), waiting until ctx is done.
func (t *Structured) NextError(ctx context.Context) (StructuredError, error) {
	var e C.wtd_structured_error
	err := waitLoop(ctx, func(ms C.int32_t) error {
		return t.use(func(h *C.wtd_structured) error {
			return call(func() C.enum_wtd_result { return C.wtd_structured_next_error(h, &e, ms) })
		})
	})
	if err != nil {
		return StructuredError{}, err
	}
	return StructuredError{
		Kind: StructuredErrorKind(e.kind), TypeID: uint16(e.type_id), HasTypeID: bool(e.has_type_id),
		Size: int(e.size), Message: C.GoString(&e.message[0]),
	}, nil
}

// Stats reads the transport's counters.
func (t *Structured) Stats() (StructuredStats, error) {
	var c C.wtd_structured_stats
	err := t.use(func(h *C.wtd_structured) error {
		return call(func() C.enum_wtd_result { return C.wtd_structured_get_stats(h, &c) })
	})
	return StructuredStats{
		Sent: uint64(c.sent), Received: uint64(c.received), UnknownType: uint64(c.unknown_type),
		TooShort: uint64(c.too_short), DecodeErrors: uint64(c.decode_errors), QueueDrops: uint64(c.queue_drops),
	}, err
}

// IsClosed reports whether the transport or its session is closed.
func (t *Structured) IsClosed() bool {
	closed := true
	t.use(func(h *C.wtd_structured) error { closed = bool(C.wtd_structured_is_closed(h)); return nil })
	return closed
}

// Close closes the transport and releases it; the session stays open. Safe to call
// twice.
func (t *Structured) Close() error {
	t.once.Do(func() {
		t.use(func(h *C.wtd_structured) error { C.wtd_structured_close(h); return nil }) // wake waiters
		t.mu.Lock()
		t.free = true
		C.wtd_structured_free(t.h)
		t.mu.Unlock()
	})
	return nil
}
