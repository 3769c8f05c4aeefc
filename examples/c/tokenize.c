/* tokenize.c — token ids of a text, and the text back (loads only the tokenizer).
 *
 *   tokenize TOKENIZER_PATH "text" [--special]
 *
 * TOKENIZER_PATH: a model directory, a tokenizer.json or a .tiktoken file.
 * Build: cc tokenize.c -I include -L lib -lphi4 -Wl,-rpath,lib -o tokenize
 */
#include <phi4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_PATH \"text\" [--special]\n", argv[0]);
        return 2;
    }
    phi4_tokenizer *tok = NULL;
    if (phi4_tokenizer_load(argv[1], &tok) != PHI4_OK) {
        fprintf(stderr, "%s\n", phi4_last_error());
        return 1;
    }
    int special = argc > 3 && strcmp(argv[3], "--special") == 0;
    size_t n = 0;
    /* Ask for the size first (a NULL buffer of capacity 0), then fill. */
    phi4_status st = phi4_tokenize(tok, argv[2], strlen(argv[2]), special, NULL, 0, &n);
    if (st != PHI4_OK && st != PHI4_ERR_BUFFER_TOO_SMALL) {
        fprintf(stderr, "%s\n", phi4_last_error());
        phi4_tokenizer_free(tok);
        return 1;
    }
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    phi4_tokenize(tok, argv[2], strlen(argv[2]), special, ids, n, &n);
    printf("[");
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
    printf("]\n");
    size_t len = 0;
    phi4_detokenize(tok, ids, n, NULL, 0, &len);
    char *text = malloc(len + 1);
    phi4_detokenize(tok, ids, n, text, len + 1, &len);
    printf("%s\n", text);
    free(text);
    free(ids);
    phi4_tokenizer_free(tok);
    return 0;
}
