/*
 * cxx_header.cc - mp.h from C++: the header compiles as C++11 (-pedantic),
 * its declarations have C linkage, and a few calls through libmp.so behave
 * as they do from C.  A TAP test, run by `make check`.
 */
#include <mp.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int planned, failed;

void check(bool ok, const std::string &what)
{
    std::printf("%s %d - %s\n", ok ? "ok" : "not ok", ++planned,
                what.c_str());
    failed += !ok;
}

} // namespace

/* A target defined in C++: it sends its typed argument back, reversed,
 * and ends with mp_exit(), which must be [[noreturn]] to C++ too: with
 * -Werror, a non-void function that falls off its end would not compile
 * otherwise. */
MP_TARGET(cxx_reverse)
{
    std::string s(mp_args_str(args, 0));
    std::string back(s.rbegin(), s.rend());

    mp_queue_put_str(mp_args_queue(args, mp_args_at(args, "out")),
                     back.c_str());
    mp_exit(7);
}

int main(int argc, char **argv)
{
    mp_main(argc, argv);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    std::printf("TAP version 13\n1..7\n");

    check(std::string(mp_exception_name(MP_EEMPTY)) == "queue.Empty",
          "mp_exception_name(MP_EEMPTY) is queue.Empty");
    check(std::string(mp_get_start_method(0)) == "fork",
          "the default start method is fork");

    mp_queue *q = nullptr;
    mp_process *p = nullptr;
    mp_process_options opt = mp_process_options();
    int code = -1;
    void *msg = nullptr;
    size_t len = 0;

    opt.name = "cxx";
    /* C++ has no MP_ARGS (no _Generic): an array of mp_arg values. */
    check(mp_queue_new(&q, 0) == 0, "a queue is made");
    const mp_arg v[] = { mp_arg_str("abc"),
                         mp_arg_named("out", mp_arg_queue(q)) };
    check(mp_process_create(&p, &cxx_reverse_target, v, 2, &opt) == 0 &&
              mp_process_start(p) == 0,
          "a process with a C++ target and typed arguments starts");
    check(p != nullptr && mp_process_join(p, MP_FOREVER) == 0 &&
              mp_process_exitcode(p, &code) == 1 && code == 7,
          "it ends with mp_exit(7)'s code");
    check(q != nullptr && mp_queue_get(q, &msg, &len, 1, 10.0) == 0 &&
              std::string(static_cast<char *>(msg), len) == "cba",
          "its message comes back through the queue");
    check(p != nullptr && std::string(mp_process_name(p)) == "cxx",
          "the name given in mp_process_options");

    std::free(msg);
    p = mp_process_free(p);
    q = mp_queue_free(q);
    return failed != 0;
}
