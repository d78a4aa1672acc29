# Drawn by `wikv plot` from validate-quiet.tsv; re-draw with: gnuplot validate-quiet.gp (in this folder)
reset
set terminal pngcairo size 1050,720 font 'Helvetica,9' fontscale 4.1667 linewidth 4.1667 pointscale 4.1667 dashlength 1 noenhanced background '#ffffff'
set output 'validate-quiet.png'
set encoding utf8
set datafile separator '\t'
set border 3 lw 0.6 lc rgb '#333333'
set tics nomirror out scale 0.5,0.3 textcolor rgb '#000000'
set grid xtics ytics back lt 1 lw 0.5 lc rgb '#dcdcdc'
set pointsize 0.7
set bars small
set style line 100 lc rgb '#7f7f7f' dt 2 lw 0.8
set key outside top center horizontal Left reverse nobox noopaque samplen 1.5 spacing 0.95 width 1 font ',8' noautotitle
set logscale x
set format x '%g'
set logscale y
set format y '%g'
set logscale xy
set format x '%g'
set format y '%g'
set xrange [0.0188490893:1.05865121]
set yrange [0.0188490893:1.05865121]
set size square
set xlabel 'Simulated TTFT (s)'
set ylabel 'Measured TTFT (s)'
set key outside right center vertical
plot x with lines ls 100 title 'y = x', \
     'validate-quiet.tsv' skip 1 index 0 using 3:4 with points lc rgb '#000000' dt 1 lw 1.10 pt 4 ps 0.7 title 'prefill', \
     'validate-quiet.tsv' skip 1 index 1 using 3:4 with points lc rgb '#7F7F7F' dt 1 lw 1.10 pt 6 ps 0.7 title 'full', \
     'validate-quiet.tsv' skip 1 index 2 using 3:4 with points lc rgb '#0072B2' dt 1 lw 1.10 pt 5 ps 0.7 title 'kivi2', \
     'validate-quiet.tsv' skip 1 index 3 using 3:4 with points lc rgb '#009E73' dt 1 lw 1.10 pt 9 ps 0.7 title 'cachegen', \
     'validate-quiet.tsv' skip 1 index 4 using 3:4 with points lc rgb '#D55E00' dt 1 lw 1.70 pt 7 ps 0.7 title 'wikv'
