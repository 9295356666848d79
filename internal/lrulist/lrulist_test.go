package lrulist

import (
	"slices"
	"testing"
)

func order(l *List[int]) (fwd, back []int) {
	for n := l.Front(); n != nil; n = n.Next() {
		fwd = append(fwd, n.Value)
	}
	for n := l.Back(); n != nil; n = n.Prev() {
		back = append(back, n.Value)
	}
	return fwd, back
}

func TestList(t *testing.T) {
	var l List[int]
	nodes := make([]*Node[int], 4)
	for i := range nodes {
		nodes[i] = &Node[int]{Value: i}
		l.PushFront(nodes[i])
	}
	check := func(want []int) {
		t.Helper()
		fwd, back := order(&l)
		slices.Reverse(back)
		if !slices.Equal(fwd, want) || !slices.Equal(back, want) {
			t.Fatalf("list = %v (backwards %v), want %v", fwd, back, want)
		}
	}
	check([]int{3, 2, 1, 0})
	l.MoveToFront(nodes[0])
	check([]int{0, 3, 2, 1})
	l.MoveToFront(nodes[0]) // already in front
	check([]int{0, 3, 2, 1})
	l.Remove(nodes[2])
	check([]int{0, 3, 1})
	l.Remove(nodes[1]) // the back
	check([]int{0, 3})
	l.Remove(nodes[0]) // the front
	check([]int{3})
	l.Remove(nodes[3])
	check(nil)
	l.PushFront(nodes[2]) // a removed node can be reused
	check([]int{2})
}
