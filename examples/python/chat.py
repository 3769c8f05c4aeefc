"""A multi-turn chat in the terminal: python3 examples/python/chat.py MODEL ["system message"]"""
import sys

import phi4

model = phi4.Model(sys.argv[1])
messages = [{"role": "system", "content": sys.argv[2]}] if len(sys.argv) > 2 else []
while True:
    try:
        line = input("> ")
    except EOFError:
        break
    if not line.strip():
        continue
    messages.append({"role": "user", "content": line})
    reply = ""
    try:
        for piece in model.chat(messages, max_tokens=512, temperature=0.7, stream=True):
            print(piece, end="", flush=True)
            reply += piece
    except KeyboardInterrupt:
        print(" [stopped]", end="")
    print()
    messages.append({"role": "assistant", "content": reply})
