package projector

import (
	"container/list"

	"github.com/usherhq/usher/services/ingest/internal/botdoc"
)

// cache is a small LRU of documents and their revisions, one per shard. The
// shard's mutex guards it (the shard reads and writes it; Seed adds to it
// from the goroutines creating bots). A stale entry is harmless: the KV
// update's revision check fails and the document is read again.
type cache struct {
	size  int
	order *list.List // front = most recent; values are *entry
	items map[string]*list.Element
}

type entry struct {
	key string
	doc *botdoc.Doc
	rev uint64
}

func newCache(size int) *cache {
	return &cache{size: size, order: list.New(), items: map[string]*list.Element{}}
}

func (c *cache) get(key string) (*botdoc.Doc, uint64, bool) {
	el, ok := c.items[key]
	if !ok {
		return nil, 0, false
	}
	c.order.MoveToFront(el)
	e := el.Value.(*entry)
	return e.doc, e.rev, true
}

func (c *cache) put(key string, doc *botdoc.Doc, rev uint64) {
	if el, ok := c.items[key]; ok {
		e := el.Value.(*entry)
		e.doc, e.rev = doc, rev
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&entry{key: key, doc: doc, rev: rev})
	if c.order.Len() > c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*entry).key)
	}
}

// add puts doc unless the key is cached already: an entry the shard wrote
// or read is at least as recent as a seed.
func (c *cache) add(key string, doc *botdoc.Doc, rev uint64) {
	if _, ok := c.items[key]; ok {
		return
	}
	c.put(key, doc, rev)
}

func (c *cache) drop(key string) {
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
	}
}
