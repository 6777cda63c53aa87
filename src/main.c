/* crier: command-line entry point. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "version") == 0) {
        printf("crier %s\n", CRIER_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: crier <command>\n");
    return 2;
}
