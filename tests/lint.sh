#!/bin/sh
# Banned C functions (STYLE.md §9): unbounded string handling and atoi.
set -u
bad=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)[[:space:]]*\(' src/*.c src/*/*.c src/*/*/*.c include/*/*.h 2>/dev/null)
if [ -n "$bad" ]; then
    echo "lint: banned functions (use snprintf, memcpy with checked lengths, strtol):"
    echo "$bad"
    echo "lint: 0 passed, 1 failed"
    exit 1
fi
echo "lint: 1 passed, 0 failed"
