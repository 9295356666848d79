// Package lrulist is the recency list behind mcpguard's bounded caches: an
// intrusive doubly-linked list whose front is the most recently used entry
// and whose back is the next to evict. Unlike container/list it is generic
// and lets a cache reuse an evicted node instead of allocating. It is not
// safe for concurrent use; the caches lock around it.
package lrulist

// Node is one entry of a List.
type Node[T any] struct {
	Value      T
	prev, next *Node[T]
}

// Prev returns the node used more recently than n, or nil at the front.
func (n *Node[T]) Prev() *Node[T] { return n.prev }

// Next returns the node used less recently than n, or nil at the back.
func (n *Node[T]) Next() *Node[T] { return n.next }

// List is a recency list. The zero value is an empty list.
type List[T any] struct {
	head, tail *Node[T]
}

// Front returns the most recently used node, or nil.
func (l *List[T]) Front() *Node[T] { return l.head }

// Back returns the least recently used node, or nil.
func (l *List[T]) Back() *Node[T] { return l.tail }

// PushFront inserts n, which must not be in a list, at the front.
func (l *List[T]) PushFront(n *Node[T]) {
	n.prev, n.next = nil, l.head
	if l.head != nil {
		l.head.prev = n
	}
	l.head = n
	if l.tail == nil {
		l.tail = n
	}
}

// Remove takes n, which must be in l, out of the list.
func (l *List[T]) Remove(n *Node[T]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

// MoveToFront marks n, which must be in l, most recently used.
func (l *List[T]) MoveToFront(n *Node[T]) {
	if l.head == n {
		return
	}
	l.Remove(n)
	l.PushFront(n)
}
