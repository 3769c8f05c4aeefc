"""Stream a completion: python3 examples/python/generate.py MODEL "prompt" [max_tokens]"""
import sys

import phi4

model = phi4.Model(sys.argv[1])
for piece in model.generate(sys.argv[2], max_tokens=int(sys.argv[3]) if len(sys.argv) > 3 else 64,
                            temperature=0.7, stream=True):
    print(piece, end="", flush=True)
print()
