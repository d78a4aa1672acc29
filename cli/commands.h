/* The subcommands of the `wikv` binary: each takes argc/argv after its own name and returns an exit
 * status (0 ok, 2 bad input, 1 other failure). One file per subcommand, registered in cli/main.c. */
#ifndef WIKV_CLI_COMMANDS_H
#define WIKV_CLI_COMMANDS_H

int wk_cmd_sim(int argc, char **argv);
int wk_cmd_study(int argc, char **argv);
int wk_cmd_trace(int argc, char **argv);
int wk_cmd_db(int argc, char **argv);
int wk_cmd_sweep(int argc, char **argv);
int wk_cmd_calibrate(int argc, char **argv);
int wk_cmd_model(int argc, char **argv);
int wk_cmd_task(int argc, char **argv);
int wk_cmd_score(int argc, char **argv);
int wk_cmd_plot(int argc, char **argv);
int wk_cmd_kv(int argc, char **argv);
int wk_cmd_engine(int argc, char **argv);
int wk_cmd_policy(int argc, char **argv);
int wk_cmd_choose(int argc, char **argv);
int wk_cmd_serve(int argc, char **argv);
int wk_cmd_run(int argc, char **argv);
int wk_cmd_kvgen(int argc, char **argv);
int wk_cmd_validate(int argc, char **argv);
int wk_cmd_quality(int argc, char **argv);

#endif
