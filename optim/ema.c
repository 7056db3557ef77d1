/* placeholder */
typedef int wki_placeholder_t;
